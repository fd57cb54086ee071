import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { NpyWriter, readNpyTokens, npyHeader, NPY_HEADER_BYTES } from './npy.js';
import { UserError } from '../util/errors.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plm-npy-'));
}

/** numpy available? Tests that need it skip with a message otherwise. */
export function numpyAvailable(): boolean {
  const r = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  return r.status === 0;
}

test('npy header is 128 bytes, 64-aligned, v1.0, ends in a newline', () => {
  const h = npyHeader('uint16', 123456789);
  assert.equal(h.length, NPY_HEADER_BYTES);
  assert.equal(NPY_HEADER_BYTES % 64, 0);
  assert.deepEqual([...h.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  assert.equal(h[8]! + 256 * h[9]!, 118);
  assert.equal(h[127], 10);
  assert.match(Buffer.from(h).toString('latin1'), /'descr': '<u2', 'fortran_order': False, 'shape': \(123456789,\)/);
});

test('streamed writer round-trips u2 and u4 ids and leaves only the target', () => {
  const dir = tmpDir();
  const ids16 = Array.from({ length: 300000 }, (_, i) => (i * 7919) % 65536);
  const w = new NpyWriter(path.join(dir, 'a.npy'), 'uint16');
  for (let i = 0; i < ids16.length; i += 1000) w.append(ids16.slice(i, i + 1000));
  w.finish();
  assert.deepEqual([...readNpyTokens(path.join(dir, 'a.npy'))], ids16);
  const ids32 = [0, 65536, 100000, 4294967295];
  const w2 = new NpyWriter(path.join(dir, 'b.npy'), 'uint32');
  w2.append(ids32);
  w2.finish();
  assert.deepEqual([...readNpyTokens(path.join(dir, 'b.npy'))], ids32);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['a.npy', 'b.npy']);
  assert.throws(() => new NpyWriter(path.join(dir, 'c.npy'), 'uint16').append([70000]), /does not fit/);
  fs.rmSync(dir, { recursive: true });
});

test('numpy opens the files with mmap_mode="r"', (t) => {
  if (!numpyAvailable()) { t.skip('python3 with numpy not found'); return; }
  const dir = tmpDir();
  const f16 = path.join(dir, 'a.npy');
  const f32 = path.join(dir, 'b.npy');
  const w = new NpyWriter(f16, 'uint16'); w.append([1, 2, 65535, 0]); w.finish();
  const w2 = new NpyWriter(f32, 'uint32'); w2.append([70000, 3]); w2.finish();
  const py = `import numpy as np, sys
a = np.load(sys.argv[1], mmap_mode="r"); b = np.load(sys.argv[2], mmap_mode="r")
print(a.dtype.str, a.shape, list(map(int, a)), b.dtype.str, b.shape, list(map(int, b)))`;
  const r = spawnSync('python3', ['-c', py, f16, f32], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '<u2 (4,) [1, 2, 65535, 0] <u4 (2,) [70000, 3]');
  fs.rmSync(dir, { recursive: true });
});

test('a write error is one line and leaves no temp file', (t) => {
  if (process.getuid?.() === 0) { t.skip('running as root: permissions are not enforced'); return; }
  const dir = tmpDir();
  fs.chmodSync(dir, 0o500);
  assert.throws(() => new NpyWriter(path.join(dir, 'x.npy'), 'uint16'), (e: unknown) => e instanceof UserError && /permission denied/.test(e.message));
  fs.chmodSync(dir, 0o700);
  assert.deepEqual(fs.readdirSync(dir), []);
  fs.rmSync(dir, { recursive: true });
});

test('a file-size limit hit while writing is one line, and no temp file is left', (t) => {
  if (process.platform === 'win32') { t.skip('needs ulimit'); return; }
  const dir = tmpDir();
  const target = path.join(dir, 'big.npy');
  const npyModule = new URL('./npy.js', import.meta.url).href;
  const js = `import { NpyWriter } from ${JSON.stringify(npyModule)};
const w = new NpyWriter(${JSON.stringify(target)}, 'uint16');
try { for (let i = 0; i < 100; i++) w.append(new Uint32Array(100000)); w.finish(); } catch (e) { console.log(e.name + ': ' + e.message); }`;
  // ulimit -f makes writes past 1 MB fail with EFBIG (SIGXFSZ ignored), like a full disk would with ENOSPC.
  const r = spawnSync('bash', ['-c', `ulimit -f 1024; trap '' XFSZ; exec "${process.execPath}" --input-type=module -e "$JS"`], { encoding: 'utf8', env: { ...process.env, JS: js } });
  assert.match(r.stdout.trim(), /^UserError: file too large .* while writing .*big\.npy$/);
  assert.deepEqual(fs.readdirSync(dir), []);
  fs.rmSync(dir, { recursive: true });
});
