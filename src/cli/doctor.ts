import type { Command } from 'commander';
import { collectDoctorReport, type DoctorReport } from '../kernels/doctor.js';

/** The report as an aligned, human-readable table. */
export function formatDoctorReport(r: DoctorReport): string[] {
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  const rows: Array<[string, string]> = [
    ['node', `${r.node} (${r.platform}/${r.arch})`],
    ['cpu', `${r.cpu.model}: ${r.cpu.logical} logical, ${r.cpu.physical ?? 'unknown'} physical cores`],
    ['backend', `${r.backend.name}, ${r.backend.threads} thread(s): ${r.backend.reason}`],
    ['wasm simd', yes(r.simd)],
    ['relaxed simd', `${yes(r.relaxedSimd)}${r.relaxedSimd ? ' (FMA)' : ''}`],
    ['blas', r.blas.found ? r.blas.library! : `not available: ${r.blas.reason}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  lines.push('', `matmul ${r.matmul.form} ${r.matmul.shape} (M x N x K), ~${r.matmul.seconds}s each:`);
  for (const m of r.matmul.results) {
    const val = m.gflops === null ? `failed: ${m.error}` : `${m.gflops.toFixed(1).padStart(7)} GFLOP/s`;
    lines.push(`  ${m.backend.padEnd(7)} ${String(m.threads).padStart(2)} thread(s)  ${val}`);
  }
  return lines;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('show the runtime, the kernel backend chosen and why, and a quick matmul speed check')
    .option('--json', 'print one JSON object instead of a table')
    .action(async (opts: { json?: boolean }) => {
      const report = await collectDoctorReport();
      if (opts.json) console.log(JSON.stringify(report));
      else for (const line of formatDoctorReport(report)) console.log(line);
    });
}
