import os from 'node:os';
import { readFileSync } from 'node:fs';
import type { Arena } from './arena.js';
import { benchGemm, shapeLabel } from './bench.js';
import { createBackend, defaultThreads, type BackendChoice } from './index.js';
import { addonPath, loadNativeBlas } from './native/index.js';
import type { Kernels } from './types.js';
import type { GemmShape } from './wasm/measure.js';

export interface DoctorMeasurement {
  backend: string;
  threads: number;
  /** null when the backend could not be created (see `error`). */
  gflops: number | null;
  error?: string;
}

/** Everything `pocketlm doctor` prints: the machine, the backend choice and a quick speed check. */
export interface DoctorReport {
  node: string;
  platform: string;
  arch: string;
  cpu: { model: string; logical: number; physical: number | null };
  /** What createBackend({ backend: 'auto' }) picks, and why. */
  backend: { name: string; reason: string; threads: number };
  simd: boolean;
  relaxedSimd: boolean;
  blas: { found: boolean; library: string | null; addon: string; reason: string | null };
  matmul: { shape: string; form: string; seconds: number; results: DoctorMeasurement[] };
}

/**
 * Physical cores from /proc/cpuinfo's (physical id, core id) pairs, or null where that is
 * not available (macOS, containers hiding it). `cpuinfo` is the file's text.
 */
export function physicalCores(cpuinfo: string): number | null {
  const cores = new Set<string>();
  for (const block of cpuinfo.split(/\n\s*\n/)) {
    const phys = /^physical id\s*:\s*(\d+)/m.exec(block);
    const core = /^core id\s*:\s*(\d+)/m.exec(block);
    if (phys && core) cores.add(`${phys[1]}:${core[1]}`);
  }
  return cores.size > 0 ? cores.size : null;
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}

/** The shape doctor times: the default model's fused SwiGLU up-projection forward at B*T = 512. */
export const DOCTOR_SHAPE: GemmShape = { form: 'nn', M: 512, N: 1536, K: 192 };

async function measure(choice: BackendChoice, threads: number, seconds: number): Promise<DoctorMeasurement> {
  let backend;
  try {
    backend = await createBackend({ backend: choice, threads });
  } catch (e) {
    return { backend: String(choice), threads, gflops: null, error: firstLine(e) };
  }
  try {
    const k: Kernels = backend.kernels;
    const arena: Arena = backend.arena;
    return { backend: k.name, threads: k.threads, gflops: benchGemm(k, arena, DOCTOR_SHAPE, seconds) };
  } finally {
    await backend.dispose();
  }
}

/**
 * Inspects the runtime and times one product shape on each available backend (js, wasm
 * and native at 1 and 2 threads): a few seconds in all. One backend exists at a time.
 */
export async function collectDoctorReport(opts: { seconds?: number } = {}): Promise<DoctorReport> {
  const seconds = opts.seconds ?? 0.3;
  const cpus = os.cpus();
  const auto = await createBackend({ backend: 'auto' });
  const info = auto.info;
  await auto.dispose();
  const native = loadNativeBlas();

  const results: DoctorMeasurement[] = [];
  results.push(await measure('js', 1, seconds));
  const threadCounts = [...new Set([1, Math.min(2, defaultThreads())])];
  if (info.simd) for (const t of threadCounts) results.push(await measure('wasm', t, seconds));
  if (native.ok) for (const t of threadCounts) results.push(await measure('native', t, seconds));

  return {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cpu: { model: cpus[0]?.model.trim() ?? 'unknown', logical: defaultThreads(), physical: physicalCores(readCpuinfo()) },
    backend: { name: info.name, reason: info.reason, threads: info.threads },
    simd: info.simd,
    relaxedSimd: info.relaxedSimd,
    blas: { found: native.ok, library: native.ok ? native.library : null, addon: addonPath(), reason: native.ok ? null : native.reason },
    matmul: { shape: shapeLabel(DOCTOR_SHAPE), form: DOCTOR_SHAPE.form, seconds, results },
  };
}
