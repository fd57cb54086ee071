import type { Kernels } from '../types.js';
// Placeholder: the N-API CBLAS addon lands here.
export interface NativeBlas { sgemm(...args: unknown[]): void }
export function loadNativeBlas(): { ok: true; addon: NativeBlas; library: string } | { ok: false; reason: string } {
  return { ok: false, reason: 'native addon not built yet' };
}
export function createNativeKernels(_base: Kernels, _addon: NativeBlas, _opts: { threads: number }): Kernels {
  throw new Error('native kernels not built yet');
}
