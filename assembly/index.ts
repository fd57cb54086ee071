// Entry point of both wasm builds (relaxed SIMD and plain SIMD differ only in flags).
export * from './gemm';
export * from './ops';
export * from './attention';

/** End of the module's static data: the arena must start above it. */
export function heapBase(): usize {
  return __heap_base;
}
