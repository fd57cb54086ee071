import fs from 'node:fs';
import type { Command } from 'commander';
import { readSystemStatus, type SystemStatus } from '../util/device.js';
import { listRuns, type Listed } from '../dashboard/listing.js';
import { formatSeconds } from '../plot/run-chart.js';
import { DEFAULT_ROOTS } from './dashboard.js';

const collect = (v: string, acc: string[]): string[] => [...acc, v];
const mb = (x: number) => (x >= 1024 ? `${(x / 1024).toFixed(1)} GB` : `${Math.round(x)} MB`);

function machineLines(s: SystemStatus): string[] {
  const mem = s.availableMemoryMb ?? s.freeMemoryMb;
  const cpu = [`${s.cores} cores`];
  if (s.cpuBusyPercent !== null) cpu.push(`${Math.round(s.cpuBusyPercent)}% busy`);
  if (s.loadAverage) cpu.push(`load ${s.loadAverage.map((x) => x.toFixed(2)).join(' ')}`);
  const battery = s.batteryPercent === null ? 'unknown (no battery readable)'
    : `${Math.round(s.batteryPercent)}%${s.charging === true ? ', charging' : s.charging === false ? ', not charging' : ''} (${s.batterySource})`;
  return [
    `memory:      ${mem === null ? 'unknown' : `${mb(mem)} ${s.availableMemoryMb !== null ? 'available' : 'free'}`} of ${mb(s.totalMemoryMb)}`,
    `cpu:         ${cpu.join(', ')}`,
    `temperature: ${s.temperatureC === null ? 'unknown (no thermal zone readable)' : `${s.temperatureC.toFixed(1)} °C (${s.temperatureSource})`}`,
    `battery:     ${battery}`,
    `disk:        ${s.diskFreeMb === null ? 'unknown' : `${mb(s.diskFreeMb)} free of ${mb(s.diskTotalMb!)}`} (${s.diskPath})`,
  ];
}

function runLine(x: Listed): string {
  const r = x.last;
  const what = x.kind === 'study' ? 'study' : r
    ? `step ${r.step} | loss ${r.loss.toFixed(4)}${r.val_bpb !== undefined ? ` | val ${r.val_bpb.toFixed(4)} bits/byte` : ''} | ${Math.round(r.tokens_per_second).toLocaleString('en-US')} tok/s | ${formatSeconds(r.elapsed)}`
    : 'no step logged yet';
  return `  ${x.id}  ${what}  (pid ${x.pid}, ${x.dir})`;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('the machine (memory, CPU, temperature, battery, disk) and the runs and studies in progress')
    .option('--runs <dir>', 'a folder of run or study folders (repeatable; default runs/ and research/)', collect, [])
    .option('--json', 'print JSON')
    .action(async (f: { runs: string[]; json?: boolean }) => {
      const roots = f.runs.length ? f.runs : DEFAULT_ROOTS;
      const s = await readSystemStatus({ diskPath: roots.find((r) => fs.existsSync(r)) ?? '.' });
      const running = listRuns(roots).filter((x) => x.running);
      if (f.json) {
        console.log(JSON.stringify({ machine: s, running }, null, 2));
        return;
      }
      for (const l of machineLines(s)) console.log(l);
      console.log(running.length ? `in progress (${roots.join(', ')}):` : `nothing in progress in ${roots.join(', ')}`);
      for (const x of running) console.log(runLine(x));
    });
}
