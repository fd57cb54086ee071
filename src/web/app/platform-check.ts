// Compile-time only (type-checked by scripts/build-web.mjs, never bundled): the browser's host
// seam must export what Node's does, with the same types, or the web build would break at runtime.
import type * as NodePlatform from '../../kernels/wasm/platform.js';
import type * as WebPlatform from '../../kernels/wasm/platform.web.js';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const platformsMatch: Same<typeof NodePlatform, typeof WebPlatform> = true;
