import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmArena } from '../kernels/arena.js';

test('arena views are aligned, disjoint and survive growth', () => {
  const arena = new WasmArena({ initialBytes: 2 << 20 });
  const a = arena.floats(10);
  a.fill(7);
  const big = arena.floats(1 << 20); // forces memory.grow
  assert.equal(a.byteOffset % 64, 0);
  assert.equal(big.byteOffset % 64, 0);
  assert.ok(big.byteOffset >= a.byteOffset + 40);
  assert.equal(a[9], 7); // old view still valid after grow
  big[0] = 1;
  assert.equal(a[0], 7);
});
