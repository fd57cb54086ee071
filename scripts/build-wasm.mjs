// Compiles assembly/index.ts with AssemblyScript into two modules in dist/wasm/:
//   kernels-relaxed.wasm  SIMD + relaxed SIMD (madd is a fused multiply-add)
//   kernels-simd.wasm     SIMD only (madd is mul + add), for engines without relaxed SIMD
// Same source; assembly/simd.ts branches on ASC_FEATURE_RELAXED_SIMD at compile time.
// The memory is imported and shared (the arena), the runtime is the allocation-free stub,
// and the loader checks that static data ends below the arena base.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'dist', 'wasm');
mkdirSync(outDir, { recursive: true });

const common = [
  path.join(root, 'assembly', 'index.ts'),
  '-O3', '--noAssert',
  '--runtime', 'stub',
  '--importMemory', '--sharedMemory', '--initialMemory', '17', '--maximumMemory', '65536',
  '--enable', 'simd,threads',
];

const builds = [
  { file: 'kernels-relaxed.wasm', extra: ['--enable', 'relaxed-simd'] },
  { file: 'kernels-simd.wasm', extra: [] },
];

for (const b of builds) {
  const { error, stderr } = await asc.main([...common, ...b.extra, '--outFile', path.join(outDir, b.file)], {});
  if (error) {
    console.error(stderr.toString());
    console.error(`build-wasm: ${b.file} failed: ${error.message}`);
    process.exit(1);
  }
  console.log(`build-wasm: dist/wasm/${b.file}`);
}
