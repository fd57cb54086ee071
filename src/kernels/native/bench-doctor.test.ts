import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeVsNumpy, runKernelBench, timePerCall, type BenchResult } from '../bench.js';
import { collectDoctorReport, physicalCores } from '../doctor.js';
import { UserError } from '../../util/errors.js';
import { loadNativeBlas } from './index.js';

describe('doctor', () => {
  it('counts physical cores from (physical id, core id) pairs', () => {
    const block = (cpu: number, phys: number, core: number): string =>
      `processor\t: ${cpu}\nmodel name\t: X\nphysical id\t: ${phys}\ncore id\t\t: ${core}\n`;
    // 2 sockets x 2 cores x 2 hyperthreads = 8 logical, 4 physical
    const smt = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => block(i, i >> 2, (i >> 1) & 1)).join('\n');
    assert.equal(physicalCores(smt), 4);
    assert.equal(physicalCores([block(0, 0, 0), block(1, 0, 1)].join('\n')), 2);
    assert.equal(physicalCores('processor\t: 0\nBogoMIPS\t: 50\n'), null);
    assert.equal(physicalCores(''), null);
  });

  it('reports the runtime, the backend choice and a measured GFLOP/s per backend', async () => {
    const r = await collectDoctorReport({ seconds: 0.02 });
    assert.equal(r.node, process.version);
    assert.ok(r.cpu.logical >= 1);
    assert.match(r.backend.reason, /\S/);
    const native = loadNativeBlas();
    assert.equal(r.blas.found, native.ok);
    if (!native.ok) assert.match(r.blas.reason!, /\S/);
    const names = r.matmul.results.map((m) => `${m.backend}/${m.threads}`);
    assert.ok(names.includes('js/1'));
    if (r.simd) assert.ok(names.includes('wasm/1'));
    if (native.ok) assert.ok(names.includes('native/1'));
    for (const m of r.matmul.results) assert.ok(m.gflops !== null && m.gflops > 0, `${m.backend}: ${m.error}`);
    // The report is what --json prints: it must survive a JSON round trip unchanged.
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  });
});

describe('bench kernels', () => {
  it('times a call by repeating it for at least the given wall time', () => {
    let calls = 0;
    const sec = timePerCall(() => {
      calls++;
      const t = performance.now();
      while (performance.now() - t < 2);
    }, 0.02);
    assert.ok(sec >= 0.0019, `2 ms busy loop measured as ${sec}s`);
    // One warm-up call, then timed calls until >= 0.02 s: their count times the mean is the total.
    assert.ok(calls >= 2);
    assert.ok((calls - 1) * sec >= 0.02 - 1e-9, `${calls} calls of ${sec}s`);
  });

  it('compares native with numpy on the shapes both ran, ignoring summaries', () => {
    const r = (backend: string, threads: number, op: string, shape: string, gflops: number): BenchResult => ({ backend, threads, op, shape, gflops });
    const results = [
      r('native', 1, 'gemm-nn', '1x2x3', 90), r('numpy', 1, 'gemm-nn', '1x2x3', 100),
      r('native', 1, 'gemm-tn', '3x2x1', 40), r('numpy', 1, 'gemm-tn', '3x2x1', 40),
      r('native', 1, 'gemm-nt', '9x9x9', 999), // numpy did not run it: not compared
      r('native', 1, 'geomean-gemm', '3 shapes', 1), r('numpy', 1, 'geomean-gemm', '3 shapes', 1000),
      r('native', 2, 'gemm-nn', '1x2x3', 100),
    ];
    const c = nativeVsNumpy(results);
    assert.equal(c.length, 1);
    assert.equal(c[0]!.threads, 1);
    assert.equal(c[0]!.shapes, 2);
    assert.ok(Math.abs(c[0]!.ratio - Math.sqrt(0.9)) < 1e-12);
  });

  it('prints one JSON object per line with GFLOP/s and GB/s per case, then geomeans', async () => {
    const lines: string[] = [];
    await runKernelBench({ json: true, quick: true, backends: ['wasm'], threads: [1] }, (l) => lines.push(l));
    const objs = lines.map((l) => JSON.parse(l) as BenchResult);
    const gemm = objs.filter((o) => o.op.startsWith('gemm-'));
    assert.equal(gemm.length, 15);
    assert.deepEqual(new Set(gemm.map((o) => o.op)), new Set(['gemm-nn', 'gemm-tn', 'gemm-nt']));
    for (const o of gemm) {
      assert.equal(o.backend, 'wasm');
      assert.equal(o.threads, 1);
      assert.match(o.shape, /^\d+x\d+x\d+$/);
      assert.ok(o.gflops! > 0);
    }
    const elementwise = objs.filter((o) => o.gbps !== undefined && !o.op.startsWith('geomean'));
    assert.deepEqual(elementwise.map((o) => o.op), ['rmsnorm', 'softmax', 'swiglu', 'cross-entropy', 'adamw']);
    const geo = objs.find((o) => o.op === 'geomean-gemm')!;
    const expected = Math.exp(gemm.reduce((s, o) => s + Math.log(o.gflops!), 0) / gemm.length);
    assert.ok(Math.abs(geo.gflops! - expected) < 1e-9 * expected);
  });

  it('rejects unknown backends and bad thread counts as user errors', async () => {
    await assert.rejects(runKernelBench({ json: false, backends: ['cuda'] }, () => {}), UserError);
    await assert.rejects(runKernelBench({ json: false, backends: ['wasm'], threads: [0] }, () => {}), UserError);
  });
});
