// Applying BPE merges to one pre-token: repeatedly merge the adjacent pair with the lowest merge
// rank, the leftmost one on ties, until no adjacent pair has a merge. This is Hugging Face's BPE
// (`Word::merge_all`: a heap of (rank, position)), so both produce the same tokens.

/** Largest vocabulary the tables handle (ids must fit the 20-bit pair hash fields comfortably). */
export const MAX_VOCAB = 1 << 20;

const EMPTY = -1;

/**
 * Merge rules as an open-addressing hash table on (left id, right id) -> rank; the merged token's
 * id is `result[rank]`. Typed arrays instead of a Map: pair keys of a 50k vocabulary exceed V8's
 * small-integer range, and hashing doubles in a Map is several times slower.
 */
export class MergeTable {
  readonly size: number;
  readonly left: Int32Array;
  readonly right: Int32Array;
  readonly result: Int32Array;
  private readonly mask: number;
  private readonly slotA: Int32Array;
  private readonly slotB: Int32Array;
  private readonly slotRank: Int32Array;

  /** `merges[r]` is the pair merged with rank r; `results[r]` the id it becomes. */
  constructor(merges: ReadonlyArray<readonly [number, number]>, results: ArrayLike<number>) {
    this.size = merges.length;
    this.left = new Int32Array(merges.length);
    this.right = new Int32Array(merges.length);
    this.result = new Int32Array(merges.length);
    let cap = 16;
    while (cap < merges.length * 2) cap *= 2;
    this.mask = cap - 1;
    this.slotA = new Int32Array(cap).fill(EMPTY);
    this.slotB = new Int32Array(cap);
    this.slotRank = new Int32Array(cap);
    for (let r = 0; r < merges.length; r++) {
      const [a, b] = merges[r]!;
      this.left[r] = a;
      this.right[r] = b;
      this.result[r] = results[r]!;
      let h = hashPair(a, b) & this.mask;
      while (this.slotA[h] !== EMPTY && !(this.slotA[h] === a && this.slotB[h] === b)) h = (h + 1) & this.mask;
      // A duplicated pair keeps its first (lowest) rank: the later copy could never apply.
      if (this.slotA[h] === EMPTY) {
        this.slotA[h] = a;
        this.slotB[h] = b;
        this.slotRank[h] = r;
      }
    }
  }

  /** Rank of the merge (a, b), or -1 if there is none. */
  rank(a: number, b: number): number {
    let h = hashPair(a, b) & this.mask;
    for (;;) {
      const sa = this.slotA[h]!;
      if (sa === EMPTY) return -1;
      if (sa === a && this.slotB[h] === b) return this.slotRank[h]!;
      h = (h + 1) & this.mask;
    }
  }
}

function hashPair(a: number, b: number): number {
  let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Above this many symbols the heap beats rescanning the pair ranks after each merge. */
export const HEAP_THRESHOLD = 48;

/** Applies the merges to `syms` (token ids, usually one per byte); returns the merged ids. */
export function applyMerges(syms: number[], table: MergeTable): number[] {
  if (syms.length < 2) return syms;
  return syms.length > HEAP_THRESHOLD ? applyMergesHeap(syms, table) : applyMergesLinear(syms, table);
}

const NONE = 0x7fffffff;

/**
 * For short pre-tokens: keep the rank of every adjacent pair, find the minimum by a scan and
 * update only the two pairs next to each merge. O(n^2) in the worst case, but n is small here
 * and the scan is tight.
 */
export function applyMergesLinear(input: number[], table: MergeTable): number[] {
  const syms = input.slice();
  const ranks: number[] = new Array<number>(syms.length - 1);
  for (let i = 0; i < syms.length - 1; i++) {
    const r = table.rank(syms[i]!, syms[i + 1]!);
    ranks[i] = r < 0 ? NONE : r;
  }
  for (;;) {
    let best = NONE;
    let at = -1;
    for (let i = 0; i < ranks.length; i++) {
      // strict '<' keeps the leftmost of equal ranks
      if (ranks[i]! < best) { best = ranks[i]!; at = i; }
    }
    if (at < 0) break;
    syms[at] = table.result[best]!;
    syms.splice(at + 1, 1);
    ranks.splice(at, 1);
    if (at > 0) {
      const r = table.rank(syms[at - 1]!, syms[at]!);
      ranks[at - 1] = r < 0 ? NONE : r;
    }
    if (at < syms.length - 1) {
      const r = table.rank(syms[at]!, syms[at + 1]!);
      ranks[at] = r < 0 ? NONE : r;
    }
  }
  return syms;
}

/**
 * For long pre-tokens: symbols in a doubly linked list over their original positions, candidate
 * merges in a binary min-heap keyed by rank * 2^32 + position (so ties go to the leftmost). Stale
 * entries are dropped when popped: an entry is live iff its left node is alive, has a right
 * neighbour, and that pair still has the entry's rank (a rank names exactly one pair).
 */
export function applyMergesHeap(input: number[], table: MergeTable): number[] {
  const n = input.length;
  const sym = Int32Array.from(input);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
  const heap = new MinHeap();
  const push = (pos: number): void => {
    const nx = next[pos]!;
    if (nx < 0) return;
    const r = table.rank(sym[pos]!, sym[nx]!);
    if (r >= 0) heap.push(r * 4294967296 + pos);
  };
  for (let i = 0; i < n - 1; i++) push(i);
  while (heap.length > 0) {
    const key = heap.pop();
    const rank = Math.floor(key / 4294967296);
    const pos = key - rank * 4294967296;
    if (!alive[pos]) continue;
    const nx = next[pos]!;
    if (nx < 0 || table.rank(sym[pos]!, sym[nx]!) !== rank) continue;
    sym[pos] = table.result[rank]!;
    alive[nx] = 0;
    const nn = next[nx]!;
    next[pos] = nn;
    if (nn >= 0) prev[nn] = pos;
    if (prev[pos]! >= 0) push(prev[pos]!);
    push(pos);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
  return out;
}

/** A binary min-heap of non-negative numbers (exact integers below 2^53). */
export class MinHeap {
  private data: number[] = [];

  get length(): number { return this.data.length; }

  push(x: number): void {
    const d = this.data;
    let i = d.length;
    d.push(x);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p]! <= x) break;
      d[i] = d[p]!;
      i = p;
    }
    d[i] = x;
  }

  pop(): number {
    const d = this.data;
    const top = d[0]!;
    const last = d.pop()!;
    const n = d.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && d[r]! < d[l]! ? r : l;
        if (d[c]! >= last) break;
        d[i] = d[c]!;
        i = c;
      }
      d[i] = last;
    }
    return top;
  }
}
