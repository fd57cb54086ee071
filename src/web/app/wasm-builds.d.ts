/** The two kernel builds, inlined by scripts/build-web.mjs (the browser cannot read dist/wasm/). */
declare module 'pocketlm:wasm-builds' {
  export const relaxed: Uint8Array;
  export const simd: Uint8Array;
}
