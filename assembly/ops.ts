// Everything that is not a matrix product. Pointers are byte addresses in the shared
// memory; counts are elements. Row-split kernels take the pointers of their first row, so
// the JavaScript side can hand disjoint row ranges to different threads.
import { madd, hsum, hmax, vexp, sexp, vsigmoid, vone, vzero } from './simd';
import { gemm } from './gemm';

// @ts-ignore: decorator
@inline function at(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}

/** Checks ids are in [0, V): returns 0, or 1 + the index of the first bad one. */
export function checkIds(ids: usize, n: i32, V: i32): i32 {
  for (let i = 0; i < n; i++) {
    const t = load<i32>(at(ids, i));
    if (t < 0 || t >= V) return i + 1;
  }
  return 0;
}

// ------------------------------------------------------------------ embedding
/** out[i, :] = table[tokens[i], :] (ids checked by the caller). */
export function embeddingForward(out: usize, tokens: usize, table: usize, N: i32, C: i32): void {
  const bytes = <usize>C << 2;
  for (let i = 0; i < N; i++) {
    const t = load<i32>(at(tokens, i));
    memory.copy(out + <usize>i * bytes, table + <usize>t * bytes, bytes);
  }
}

/** dtable[tokens[i], c] += dout[i, c] for columns c < W of rows with stride C. Threads split columns. */
export function embeddingBackward(dtable: usize, dout: usize, tokens: usize, N: i32, W: i32, C: i32): void {
  for (let i = 0; i < N; i++) {
    const t = load<i32>(at(tokens, i));
    axpy(dtable + (<usize>t * <usize>C << 2), dout + (<usize>i * <usize>C << 2), 1.0, W);
  }
}

// ------------------------------------------------------------------ RMSNorm
export function rmsnormForward(out: usize, rstd: usize, inp: usize, w: usize, N: i32, C: i32, eps: f32): void {
  for (let r = 0; r < N; r++) {
    const x = inp + (<usize>r * <usize>C << 2);
    const o = out + (<usize>r * <usize>C << 2);
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= C; j += 4) {
      const v = v128.load(at(x, j));
      acc = madd(v, v, acc);
    }
    let ss = hsum(acc);
    for (; j < C; j++) { const v = load<f32>(at(x, j)); ss += v * v; }
    const rs: f32 = <f32>1.0 / Mathf.sqrt(ss / <f32>C + eps);
    store<f32>(at(rstd, r), rs);
    const vr = f32x4.splat(rs);
    j = 0;
    for (; j + 4 <= C; j += 4) {
      v128.store(at(o, j), f32x4.mul(f32x4.mul(v128.load(at(x, j)), vr), v128.load(at(w, j))));
    }
    for (; j < C; j++) store<f32>(at(o, j), load<f32>(at(x, j)) * rs * load<f32>(at(w, j)));
  }
}

/**
 * sum = a + b, then RMSNorm of sum, row by row: the row's sum is still in L1 when the norm
 * reads it back, so the pair costs one pass over memory instead of two. The squares are
 * accumulated exactly as rmsnormForward does (same order), so the results are the same bits
 * as add followed by rmsnormForward. sum may alias a or b.
 */
export function addRmsnormForward(sum: usize, out: usize, rstd: usize, a: usize, b: usize, w: usize, N: i32, C: i32, eps: f32): void {
  for (let r = 0; r < N; r++) {
    const off = <usize>r * <usize>C << 2;
    const s = sum + off, o = out + off, pa = a + off, pb = b + off;
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= C; j += 4) {
      const v = f32x4.add(v128.load(at(pa, j)), v128.load(at(pb, j)));
      v128.store(at(s, j), v);
      acc = madd(v, v, acc);
    }
    let ss = hsum(acc);
    for (; j < C; j++) {
      const v = load<f32>(at(pa, j)) + load<f32>(at(pb, j));
      store<f32>(at(s, j), v);
      ss += v * v;
    }
    const rs: f32 = <f32>1.0 / Mathf.sqrt(ss / <f32>C + eps);
    store<f32>(at(rstd, r), rs);
    const vr = f32x4.splat(rs);
    j = 0;
    for (; j + 4 <= C; j += 4) {
      v128.store(at(o, j), f32x4.mul(f32x4.mul(v128.load(at(s, j)), vr), v128.load(at(w, j))));
    }
    for (; j < C; j++) store<f32>(at(o, j), load<f32>(at(s, j)) * rs * load<f32>(at(w, j)));
  }
}

/** Accumulates dinp and dweight (dweight may be a per-thread partial buffer). */
export function rmsnormBackward(dinp: usize, dweight: usize, dout: usize, inp: usize, w: usize, rstd: usize, N: i32, C: i32): void {
  for (let r = 0; r < N; r++) {
    const off = <usize>r * <usize>C << 2;
    const x = inp + off, dy = dout + off, dx = dinp + off;
    const rs = load<f32>(at(rstd, r));
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= C; j += 4) {
      acc = madd(f32x4.mul(v128.load(at(w, j)), v128.load(at(dy, j))), v128.load(at(x, j)), acc);
    }
    let dot = hsum(acc);
    for (; j < C; j++) dot += load<f32>(at(w, j)) * load<f32>(at(dy, j)) * load<f32>(at(x, j));
    const k: f32 = rs * rs * (dot / <f32>C);
    const vr = f32x4.splat(rs), vk = f32x4.splat(k);
    j = 0;
    for (; j + 4 <= C; j += 4) {
      const xv = v128.load(at(x, j)), dyv = v128.load(at(dy, j));
      const g = f32x4.sub(f32x4.mul(v128.load(at(w, j)), dyv), f32x4.mul(xv, vk));
      v128.store(at(dx, j), madd(vr, g, v128.load(at(dx, j))));
      v128.store(at(dweight, j), madd(f32x4.mul(dyv, xv), vr, v128.load(at(dweight, j))));
    }
    for (; j < C; j++) {
      const xv = load<f32>(at(x, j)), dyv = load<f32>(at(dy, j));
      store<f32>(at(dx, j), load<f32>(at(dx, j)) + rs * (load<f32>(at(w, j)) * dyv - xv * k));
      store<f32>(at(dweight, j), load<f32>(at(dweight, j)) + dyv * xv * rs);
    }
  }
}

// ------------------------------------------------------------------ RoPE
/**
 * Rotates rows row0 .. row0+nRows-1 (x points at row 0); dir = 1 forward, -1 for the
 * inverse rotation (backward).
 */
export function rope(x: usize, row0: i32, nRows: i32, T: i32, nHeads: i32, D: i32, rowStride: i32, cos: usize, sin: usize, dir: f32): void {
  const half = D >> 1;
  const vd = f32x4.splat(dir);
  for (let r = row0; r < row0 + nRows; r++) {
    const t = r % T;
    const cr = cos + (<usize>(t * half) << 2);
    const sr = sin + (<usize>(t * half) << 2);
    for (let h = 0; h < nHeads; h++) {
      const pa = x + ((<usize>r * <usize>rowStride + <usize>(h * D)) << 2);
      const pb = pa + (<usize>half << 2);
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const a = v128.load(at(pa, i)), b = v128.load(at(pb, i));
        const c = v128.load(at(cr, i)), s = f32x4.mul(v128.load(at(sr, i)), vd);
        v128.store(at(pa, i), f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)));
        v128.store(at(pb, i), madd(a, s, f32x4.mul(b, c)));
      }
      for (; i < half; i++) {
        const a = load<f32>(at(pa, i)), b = load<f32>(at(pb, i));
        const c = load<f32>(at(cr, i)), s = load<f32>(at(sr, i)) * dir;
        store<f32>(at(pa, i), a * c - b * s);
        store<f32>(at(pb, i), a * s + b * c);
      }
    }
  }
}

// ------------------------------------------------------------------ causal softmax
/** Rows g = row0 .. row0+nRows-1 of the flattened [nMat*T, T] scores at att. */
export function softmaxCausalForward(att: usize, row0: i32, nRows: i32, T: i32, scale: f32): void {
  const vs = f32x4.splat(scale);
  for (let g = row0; g < row0 + nRows; g++) {
    const t = g % T;
    const n = t + 1;
    const row = att + (<usize>g * <usize>T << 2);
    let vm = f32x4.splat(-Infinity);
    let j = 0;
    for (; j + 4 <= n; j += 4) vm = f32x4.pmax(vm, v128.load(at(row, j)));
    let m = hmax(vm);
    for (; j < n; j++) m = max(m, load<f32>(at(row, j)));
    // max of scale*x is scale*max(x) only for scale >= 0
    if (scale < 0) {
      m = Infinity;
      for (j = 0; j < n; j++) m = min(m, load<f32>(at(row, j)));
    }
    const vms = f32x4.splat(m * scale);
    let acc = f32x4.splat(0);
    j = 0;
    for (; j + 4 <= n; j += 4) {
      const e = vexp(f32x4.sub(f32x4.mul(v128.load(at(row, j)), vs), vms));
      v128.store(at(row, j), e);
      acc = f32x4.add(acc, e);
    }
    let sum = hsum(acc);
    for (; j < n; j++) {
      const e = sexp(load<f32>(at(row, j)) * scale - m * scale);
      store<f32>(at(row, j), e);
      sum += e;
    }
    const inv = f32x4.splat(<f32>1.0 / sum);
    j = 0;
    for (; j + 4 <= n; j += 4) v128.store(at(row, j), f32x4.mul(v128.load(at(row, j)), inv));
    for (; j < n; j++) store<f32>(at(row, j), load<f32>(at(row, j)) * f32x4.extract_lane(inv, 0));
    for (j = n; j < T; j++) store<f32>(at(row, j), 0);
  }
}

export function softmaxCausalBackward(datt: usize, att: usize, row0: i32, nRows: i32, T: i32, scale: f32): void {
  const vs = f32x4.splat(scale);
  for (let g = row0; g < row0 + nRows; g++) {
    const n = g % T + 1;
    const off = <usize>g * <usize>T << 2;
    const a = att + off, d = datt + off;
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= n; j += 4) acc = madd(v128.load(at(a, j)), v128.load(at(d, j)), acc);
    let dot = hsum(acc);
    for (; j < n; j++) dot += load<f32>(at(a, j)) * load<f32>(at(d, j));
    const vdot = f32x4.splat(dot);
    j = 0;
    for (; j + 4 <= n; j += 4) {
      v128.store(at(d, j), f32x4.mul(f32x4.mul(v128.load(at(a, j)), vs), f32x4.sub(v128.load(at(d, j)), vdot)));
    }
    for (; j < n; j++) store<f32>(at(d, j), scale * load<f32>(at(a, j)) * (load<f32>(at(d, j)) - dot));
    for (j = n; j < T; j++) store<f32>(at(d, j), 0);
  }
}

// ------------------------------------------------------------------ SwiGLU
/** o[0:w] = silu(g[0:w]) * u[0:w]: the one row loop of every SwiGLU forward (so all give the same bits). */
// @ts-ignore: decorator
@inline function swigluRow(o: usize, g: usize, u: usize, w: i32): void {
  let j = 0;
  for (; j + 4 <= w; j += 4) {
    const gv = v128.load(at(g, j));
    v128.store(at(o, j), f32x4.mul(f32x4.mul(gv, vsigmoid(gv)), v128.load(at(u, j))));
  }
  for (; j < w; j++) {
    const gv = load<f32>(at(g, j));
    const s = f32x4.extract_lane(vsigmoid(f32x4.splat(gv)), 0);
    store<f32>(at(o, j), gv * s * load<f32>(at(u, j)));
  }
}

export function swigluForward(out: usize, h: usize, N: i32, F: i32): void {
  for (let i = 0; i < N; i++) {
    const g = h + (<usize>i * <usize>(2 * F) << 2);
    swigluRow(out + (<usize>i * <usize>F << 2), g, g + (<usize>F << 2), F);
  }
}

/**
 * The gate|up product with SwiGLU applied to its output while it is still in cache: for rows
 * r0 .. r0+rows-1 and hidden columns j0 .. j0+w-1, h[:, j] = (A B)[:, j] and h[:, F+j] =
 * (A B)[:, F+j] (A is [M, K] with lda, B is [K, 2F] with ldb; beta = 0), then s = silu(gate) * up
 * on that block. The products are the wasm gemm on column blocks and the SwiGLU is swigluRow,
 * so the bits are those of gemm followed by swigluForward. `scratch` is the thread's gemm scratch.
 */
export function gemmSwiglu(K: i32, A: usize, lda: i32, B: usize, ldb: i32, h: usize, s: usize, F: i32,
  r0: i32, rows: i32, j0: i32, w: i32, scratch: usize): void {
  if (rows <= 0 || w <= 0) return;
  const ldh = 2 * F;
  const a = A + (<usize>r0 * <usize>lda << 2);
  const hg = h + ((<usize>r0 * <usize>ldh + <usize>j0) << 2);
  const hu = hg + (<usize>F << 2);
  gemm(0, 0, rows, w, K, 1, a, lda, B + (<usize>j0 << 2), ldb, 0, hg, ldh, scratch);
  gemm(0, 0, rows, w, K, 1, a, lda, B + (<usize>(F + j0) << 2), ldb, 0, hu, ldh, scratch);
  for (let i = 0; i < rows; i++) {
    const g = hg + (<usize>i * <usize>ldh << 2);
    swigluRow(s + ((<usize>(r0 + i) * <usize>F + <usize>j0) << 2), g, g + (<usize>F << 2), w);
  }
}

export function swigluBackward(dh: usize, dout: usize, h: usize, N: i32, F: i32): void {
  const one = vone();
  for (let i = 0; i < N; i++) {
    const off2 = <usize>i * <usize>(2 * F) << 2;
    const g = h + off2, u = g + (<usize>F << 2);
    const dg = dh + off2, du = dg + (<usize>F << 2);
    const dy = dout + (<usize>i * <usize>F << 2);
    let j = 0;
    for (; j + 4 <= F; j += 4) {
      const gv = v128.load(at(g, j)), uv = v128.load(at(u, j)), dyv = v128.load(at(dy, j));
      const s = vsigmoid(gv);
      const silu = f32x4.mul(gv, s);
      // d silu / dg = s * (1 + g * (1 - s))
      const ds = f32x4.mul(s, madd(gv, f32x4.sub(one, s), one));
      v128.store(at(dg, j), f32x4.mul(f32x4.mul(dyv, uv), ds));
      v128.store(at(du, j), f32x4.mul(dyv, silu));
    }
    for (; j < F; j++) {
      const gv = load<f32>(at(g, j)), uv = load<f32>(at(u, j)), dyv = load<f32>(at(dy, j));
      const s = f32x4.extract_lane(vsigmoid(f32x4.splat(gv)), 0);
      store<f32>(at(dg, j), dyv * uv * s * (<f32>1.0 + gv * (<f32>1.0 - s)));
      store<f32>(at(du, j), dyv * gv * s);
    }
  }
}

// ------------------------------------------------------------------ elementwise
export function add(out: usize, a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(out, i), f32x4.add(v128.load(at(a, i)), v128.load(at(b, i))));
  for (; i < n; i++) store<f32>(at(out, i), load<f32>(at(a, i)) + load<f32>(at(b, i)));
}

export function axpy(dst: usize, src: usize, alpha: f32, n: i32): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    v128.store(at(dst, i), madd(v128.load(at(src, i)), va, v128.load(at(dst, i))));
    v128.store(at(dst, i + 4), madd(v128.load(at(src, i + 4)), va, v128.load(at(dst, i + 4))));
  }
  for (; i + 4 <= n; i += 4) v128.store(at(dst, i), madd(v128.load(at(src, i)), va, v128.load(at(dst, i))));
  for (; i < n; i++) store<f32>(at(dst, i), load<f32>(at(dst, i)) + alpha * load<f32>(at(src, i)));
}

export function scale(x: usize, s: f32, n: i32): void {
  const vs = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(x, i), f32x4.mul(v128.load(at(x, i)), vs));
  for (; i < n; i++) store<f32>(at(x, i), load<f32>(at(x, i)) * s);
}

/**
 * sum x^2, accumulated in float64: each lane first sums 4 squares of a 32-element block in
 * float32 (error ~2e-7 relative, like one rounding of the block sum), then the block sums
 * are added in f64x2 lanes. Twice as fast as promoting every square to f64.
 */
export function sumSquares(x: usize, n: i32): f64 {
  let d0 = f64x2.splat(0), d1 = f64x2.splat(0), d2 = f64x2.splat(0), d3 = f64x2.splat(0);
  let i = 0;
  for (; i + 32 <= n; i += 32) {
    const p = at(x, i);
    let v = v128.load(p), w = v128.load(p, 16);
    let a = f32x4.mul(v, v), b = f32x4.mul(w, w);
    v = v128.load(p, 32); w = v128.load(p, 48);
    a = madd(v, v, a); b = madd(w, w, b);
    v = v128.load(p, 64); w = v128.load(p, 80);
    a = madd(v, v, a); b = madd(w, w, b);
    v = v128.load(p, 96); w = v128.load(p, 112);
    a = madd(v, v, a); b = madd(w, w, b);
    d0 = f64x2.add(d0, f64x2.promote_low_f32x4(a));
    d1 = f64x2.add(d1, f64x2.promote_low_f32x4(i64x2.shuffle(a, a, 1, 0)));
    d2 = f64x2.add(d2, f64x2.promote_low_f32x4(b));
    d3 = f64x2.add(d3, f64x2.promote_low_f32x4(i64x2.shuffle(b, b, 1, 0)));
  }
  const s2 = f64x2.add(f64x2.add(d0, d1), f64x2.add(d2, d3));
  let s = f64x2.extract_lane(s2, 0) + f64x2.extract_lane(s2, 1);
  for (; i < n; i++) { const v = <f64>load<f32>(at(x, i)); s += v * v; }
  return s;
}

// ------------------------------------------------------------------ cross-entropy
/** logsumexp of one row of V logits. */
function rowLse(row: usize, V: i32): f32 {
  let vm = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= V; j += 4) vm = f32x4.pmax(vm, v128.load(at(row, j)));
  let m = hmax(vm);
  for (; j < V; j++) m = max(m, load<f32>(at(row, j)));
  const vmx = f32x4.splat(m);
  let acc = f32x4.splat(0);
  j = 0;
  for (; j + 4 <= V; j += 4) acc = f32x4.add(acc, vexp(f32x4.sub(v128.load(at(row, j)), vmx)));
  let sum = <f64>hsum(acc);
  for (; j < V; j++) sum += <f64>sexp(load<f32>(at(row, j)) - m);
  return m + <f32>Math.log(sum);
}

export function crossEntropyForward(losses: usize, logits: usize, targets: usize, N: i32, V: i32): void {
  for (let i = 0; i < N; i++) {
    const row = logits + (<usize>i * <usize>V << 2);
    const t = load<i32>(at(targets, i));
    store<f32>(at(losses, i), rowLse(row, V) - load<f32>(at(row, t)));
  }
}

/** In place ok: dlogits may equal logits (each row is read fully before it is written). */
export function crossEntropyForwardBackward(dlogits: usize, losses: usize, logits: usize, targets: usize, N: i32, V: i32, dscale: f32): void {
  for (let i = 0; i < N; i++) {
    const off = <usize>i * <usize>V << 2;
    const row = logits + off, d = dlogits + off;
    const t = load<i32>(at(targets, i));
    const lse = rowLse(row, V);
    store<f32>(at(losses, i), lse - load<f32>(at(row, t)));
    const vl = f32x4.splat(lse), vs = f32x4.splat(dscale);
    let j = 0;
    for (; j + 4 <= V; j += 4) v128.store(at(d, j), f32x4.mul(vs, vexp(f32x4.sub(v128.load(at(row, j)), vl))));
    for (; j < V; j++) store<f32>(at(d, j), dscale * sexp(load<f32>(at(row, j)) - lse));
    store<f32>(at(d, t), load<f32>(at(d, t)) - dscale);
  }
}

// ------------------------------------------------------------------ optimizers
export function adamwUpdate(p: usize, g: usize, m: usize, v: usize, n: i32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32): void {
  const vb1 = f32x4.splat(b1), vb1c = f32x4.splat(<f32>1.0 - b1);
  const vb2 = f32x4.splat(b2), vb2c = f32x4.splat(<f32>1.0 - b2);
  const vlr = f32x4.splat(lr), veps = f32x4.splat(eps), vwd = f32x4.splat(wd);
  const vbc1 = f32x4.splat(<f32>1.0 / bc1), vbc2 = f32x4.splat(<f32>1.0 / bc2);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const gv = v128.load(at(g, i)), pv = v128.load(at(p, i));
    const mv = madd(vb1, v128.load(at(m, i)), f32x4.mul(vb1c, gv));
    const vv = madd(vb2, v128.load(at(v, i)), f32x4.mul(vb2c, f32x4.mul(gv, gv)));
    v128.store(at(m, i), mv);
    v128.store(at(v, i), vv);
    const upd = f32x4.div(f32x4.mul(mv, vbc1), f32x4.add(f32x4.sqrt(f32x4.mul(vv, vbc2)), veps));
    v128.store(at(p, i), f32x4.sub(pv, f32x4.mul(vlr, madd(vwd, pv, upd))));
  }
  for (; i < n; i++) {
    const gv = load<f32>(at(g, i)), pv = load<f32>(at(p, i));
    const mv = b1 * load<f32>(at(m, i)) + (<f32>1.0 - b1) * gv;
    const vv = b2 * load<f32>(at(v, i)) + (<f32>1.0 - b2) * gv * gv;
    store<f32>(at(m, i), mv);
    store<f32>(at(v, i), vv);
    store<f32>(at(p, i), pv - lr * ((mv / bc1) / (Mathf.sqrt(vv / bc2) + eps) + wd * pv));
  }
}

export function lionUpdate(p: usize, g: usize, m: usize, n: i32, lr: f32, b1: f32, b2: f32, wd: f32): void {
  const vb1 = f32x4.splat(b1), vb1c = f32x4.splat(<f32>1.0 - b1);
  const vb2 = f32x4.splat(b2), vb2c = f32x4.splat(<f32>1.0 - b2);
  const vlr = f32x4.splat(lr), vwd = f32x4.splat(wd);
  const one = vone(), zero = vzero();
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const gv = v128.load(at(g, i)), pv = v128.load(at(p, i)), mv = v128.load(at(m, i));
    const c = madd(vb1, mv, f32x4.mul(vb1c, gv));
    const u = f32x4.sub(v128.and(f32x4.gt(c, zero), one), v128.and(f32x4.lt(c, zero), one));
    v128.store(at(p, i), f32x4.sub(pv, f32x4.mul(vlr, madd(vwd, pv, u))));
    v128.store(at(m, i), madd(vb2, mv, f32x4.mul(vb2c, gv)));
  }
  for (; i < n; i++) {
    const gv = load<f32>(at(g, i)), pv = load<f32>(at(p, i)), mv = load<f32>(at(m, i));
    const c = b1 * mv + (<f32>1.0 - b1) * gv;
    const u: f32 = c > 0 ? 1 : c < 0 ? -1 : 0;
    store<f32>(at(p, i), pv - lr * (u + wd * pv));
    store<f32>(at(m, i), b2 * mv + (<f32>1.0 - b2) * gv);
  }
}

export function scheduleFreeAdamwUpdate(y: usize, g: usize, z: usize, x: usize, v: usize, n: i32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, ck: f32, bc2: f32): void {
  const vb1 = f32x4.splat(b1), vb1c = f32x4.splat(<f32>1.0 - b1);
  const vb2 = f32x4.splat(b2), vb2c = f32x4.splat(<f32>1.0 - b2);
  const vlr = f32x4.splat(lr), veps = f32x4.splat(eps), vwd = f32x4.splat(wd);
  const vck = f32x4.splat(ck), vckc = f32x4.splat(<f32>1.0 - ck), vbc2 = f32x4.splat(<f32>1.0 / bc2);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const gv = v128.load(at(g, i)), yv = v128.load(at(y, i));
    const vv = madd(vb2, v128.load(at(v, i)), f32x4.mul(vb2c, f32x4.mul(gv, gv)));
    v128.store(at(v, i), vv);
    const upd = f32x4.div(gv, f32x4.add(f32x4.sqrt(f32x4.mul(vv, vbc2)), veps));
    const zv = f32x4.sub(v128.load(at(z, i)), f32x4.mul(vlr, madd(vwd, yv, upd)));
    v128.store(at(z, i), zv);
    const xv = madd(vckc, v128.load(at(x, i)), f32x4.mul(vck, zv));
    v128.store(at(x, i), xv);
    v128.store(at(y, i), madd(vb1c, zv, f32x4.mul(vb1, xv)));
  }
  for (; i < n; i++) {
    const gv = load<f32>(at(g, i)), yv = load<f32>(at(y, i));
    const vv = b2 * load<f32>(at(v, i)) + (<f32>1.0 - b2) * gv * gv;
    store<f32>(at(v, i), vv);
    const zv = load<f32>(at(z, i)) - lr * (gv / (Mathf.sqrt(vv / bc2) + eps) + wd * yv);
    store<f32>(at(z, i), zv);
    const xv = (<f32>1.0 - ck) * load<f32>(at(x, i)) + ck * zv;
    store<f32>(at(x, i), xv);
    store<f32>(at(y, i), (<f32>1.0 - b1) * zv + b1 * xv);
  }
}

/** Writes e^x for n values (the JavaScript tests measure the approximation's error with it). */
export function expArray(out: usize, x: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(out, i), vexp(v128.load(at(x, i))));
  for (; i < n; i++) store<f32>(at(out, i), sexp(load<f32>(at(x, i))));
}

/** x[0:n] = 0. */
export function zero(x: usize, n: i32): void {
  memory.fill(x, 0, <usize>n << 2);
}

// ------------------------------------------------------------------ dropout
/** lowbias32 on each u32 lane (the same mix as src/kernels/js/dropout.ts). */
// @ts-ignore: decorator
@inline function mix32x4(h: v128): v128 {
  h = v128.xor(h, i32x4.shr_u(h, 16));
  h = i32x4.mul(h, i32x4.splat(0x7feb352d));
  h = v128.xor(h, i32x4.shr_u(h, 15));
  h = i32x4.mul(h, i32x4.splat(<i32>0x846ca68b));
  return v128.xor(h, i32x4.shr_u(h, 16));
}

// @ts-ignore: decorator
@inline function mix32(h: u32): u32 {
  h ^= h >> 16;
  h *= 0x7feb352d;
  h ^= h >> 15;
  h *= 0x846ca68b;
  return h ^ (h >> 16);
}

/**
 * out[i] = x[i] * s where mix32(counter + i * 0x9E3779B9) >= threshold (unsigned), else +0,
 * with s = 2^32 / (2^32 - threshold) rounded to f32 (keepScale in the js oracle). In place ok.
 * Four lanes hash four consecutive counters; the kept product is masked by the compare (all
 * ones or all zeros), so a dropped element is +0 as in the js oracle.
 */
export function dropout(out: usize, x: usize, n: i32, threshold: u32, counter: u32): void {
  const W: u32 = 0x9e3779b9;
  const s = <f32>(4294967296.0 / (4294967296.0 - <f64>threshold));
  const vs = f32x4.splat(s);
  const th = i32x4.splat(<i32>threshold);
  let c = i32x4.add(i32x4.splat(<i32>counter), i32x4(0, <i32>0x9e3779b9, <i32>0x3c6ef372, <i32>0xdaa66d2b));
  const step = i32x4.splat(<i32>0x78dde6e4); // 4 * W mod 2^32
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const keep = i32x4.ge_u(mix32x4(c), th);
    v128.store(at(out, i), v128.and(f32x4.mul(v128.load(at(x, i)), vs), keep));
    c = i32x4.add(c, step);
  }
  let cs: u32 = counter + <u32>i * W;
  for (; i < n; i++) {
    store<f32>(at(out, i), mix32(cs) >= threshold ? load<f32>(at(x, i)) * s : 0);
    cs += W;
  }
}
