// Times the fused attention kernels alone (default preset's shape by default) against a gemm on
// the same backend, in one process: node scripts/bench-attention.mjs [backend] [threads] [B T H D]
import { createBackend } from '../dist/kernels/index.js';

const [backend = 'wasm', threadsArg = '1', ...dims] = process.argv.slice(2);
const [B, T, H, D] = dims.length === 4 ? dims.map(Number) : [8, 256, 6, 32];
const be = await createBackend({ backend, threads: Number(threadsArg) });
const k = be.kernels, a = be.arena;
const C = H * D, N = B * T;
const qkv = a.floats(N * 3 * C), out = a.floats(N * C), lse = a.floats(B * H * T), dout = a.floats(N * C), dqkv = a.floats(N * 3 * C);
for (let i = 0; i < qkv.length; i++) qkv[i] = Math.sin(i * 0.37) * 1.5;
const doutScale = Number(process.env.DOUT_SCALE ?? 1), qkvScale = Number(process.env.QKV_SCALE ?? 1);
for (let i = 0; i < dout.length; i++) dout[i] = Math.cos(i * 0.11) * doutScale;
for (let i = 0; i < qkv.length; i++) qkv[i] *= qkvScale;
const scale = 1 / Math.sqrt(D);
const best = (fn, ms = 1500) => { fn(); let b = Infinity; const s = performance.now(); do { const t0 = performance.now(); fn(); b = Math.min(b, performance.now() - t0); } while (performance.now() - s < ms); return b; };
const fwd = best(() => k.attentionCausalForward(out, lse, qkv, B, T, H, D, scale));
const bwd = best(() => k.attentionCausalBackward(dqkv, dout, qkv, out, lse, B, T, H, D, scale));
// useful FLOPs: the causal half of QK^T and PV forward (2 T^2 D per head), twice that backward
const f = 2 * B * H * T * T * D;
const M = 512, K = 512, Nn = 768;
const A = a.floats(M * K), Bm = a.floats(K * Nn), Cm = a.floats(M * Nn);
A.fill(0.5); Bm.fill(0.25);
const g = best(() => k.gemm(false, false, M, Nn, K, 1, A, K, Bm, Nn, 0, Cm, Nn), 500);
console.log(JSON.stringify({ backend: be.info.name, threads: be.info.threads, B, T, H, D, fwd_ms: +fwd.toFixed(3), bwd_ms: +bwd.toFixed(3),
  fwd_gflops: +(f / fwd / 1e6).toFixed(1), bwd_gflops: +(2 * f / bwd / 1e6).toFixed(1), gemm_gflops: +(2 * M * K * Nn / g / 1e6).toFixed(1),
  load: (await import('node:os')).loadavg()[0].toFixed(1) }));
await be.dispose();
