import type { Kernels } from '../types.js';
// Placeholder: the js oracle lands here.
export function createJsKernels(): Kernels {
  throw new Error('js kernels not built yet');
}
