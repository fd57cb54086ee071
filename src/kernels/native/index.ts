/**
 * The native backend: matrix products by a CBLAS (OpenBLAS) through the N-API addon in
 * native/, everything else by the wasm kernels it wraps.
 */
export { loadNativeBlas, addonPath, openblasCoretypeFor, openblasEnv, OPENBLAS_THREAD_TIMEOUT_LOG2 } from './load.js';
export type { NativeBlas, NativeLoad } from './load.js';
export { createNativeKernels } from './kernels.js';
