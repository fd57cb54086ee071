// Training a byte-level BPE vocabulary.
//
// Pre-token frequencies are counted once; each distinct pre-token ("word") is a list of ids with
// a count. Pair counts live in a map, candidate merges in a max-heap with lazy deletion (an entry
// is stale when its count no longer matches the map), and an index from each pair to the words
// that contain it, so a merge touches only those words and updates only the pairs next to it.
// Ties between equally frequent pairs go to the smaller (left id, right id): deterministic.

import { UserError } from '../util/errors.js';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { utf8Encode } from './bytes.js';
import { MAX_VOCAB } from './merges.js';
import { forEachPiece } from './pretokenize.js';
import { END_OF_TEXT, type BpeSpec, type Tokenizer } from './types.js';

export interface TrainOptions {
  /** Total ids: 256 byte tokens + merges + special tokens. */
  vocabSize: number;
  /** Special tokens, given the ids after the merged tokens in this order. Default ['<|endoftext|>']. */
  specialTokens?: string[];
  /** Called with (merges done, merges wanted) now and then, and once at the end. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Learns merges from documents (separators already removed) until the vocabulary reaches
 * `vocabSize` ids, or earlier if no adjacent pair is left (a tiny corpus): then vocabSize is
 * smaller than asked. Ids: 0..255 are the bytes 0..255, then the merges in order, then the
 * special tokens.
 */
export function trainTokenizer(texts: string[] | Iterable<string>, opts: TrainOptions): Tokenizer {
  return trainBpe(texts, opts);
}

/** trainTokenizer with the concrete class. */
export function trainBpe(texts: Iterable<string>, opts: TrainOptions): BpeTokenizer {
  const specials = opts.specialTokens ?? [END_OF_TEXT];
  validateOptions(opts.vocabSize, specials);
  const numMerges = opts.vocabSize - 256 - specials.length;
  const counts = countPieces(texts);
  const merges = learnMerges(counts, numMerges, opts.vocabSize, opts.onProgress);
  return new BpeTokenizer(specFromMerges(merges, specials), 'trained tokenizer');
}

function validateOptions(vocabSize: number, specials: readonly string[]): void {
  const min = 256 + specials.length;
  if (!Number.isInteger(vocabSize)) throw new UserError(`vocab size ${vocabSize} is not a whole number`);
  if (vocabSize < min) {
    throw new UserError(`vocab size ${vocabSize} is too small: it must be at least ${min} (256 byte tokens + ${specials.length} special token${specials.length === 1 ? '' : 's'})`);
  }
  if (vocabSize > MAX_VOCAB) throw new UserError(`vocab size ${vocabSize} is too large (at most ${MAX_VOCAB})`);
  const seen = new Set<string>();
  for (const s of specials) {
    if (s.length === 0) throw new UserError('a special token is the empty string');
    if (seen.has(s)) throw new UserError(`special token ${JSON.stringify(s)} is given twice`);
    seen.add(s);
  }
}

/** Frequency of each pre-token over all texts. */
export function countPieces(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  const count = (p: string): void => { counts.set(p, (counts.get(p) ?? 0) + 1); };
  for (const text of texts) {
    forEachPiece(text, count);
  }
  return counts;
}

/** Ids as built by trainBpe: bytes, then merges (each one new id), then specials. */
export function specFromMerges(merges: ReadonlyArray<readonly [number, number]>, specials: readonly string[]): BpeSpec {
  const vocab: Array<Uint8Array | null> = [];
  for (let b = 0; b < 256; b++) vocab.push(Uint8Array.of(b));
  for (const [a, b] of merges) {
    const x = vocab[a]!;
    const y = vocab[b]!;
    const m = new Uint8Array(x.length + y.length);
    m.set(x, 0);
    m.set(y, x.length);
    vocab.push(m);
  }
  const first = vocab.length;
  for (let i = 0; i < specials.length; i++) vocab.push(null);
  return { vocab, merges, specials: specials.map((content, i) => ({ content, id: first + i })) };
}

/**
 * The merge loop. `idLimit` bounds every id (it sizes the pair keys a * idLimit + b, which stay
 * small integers for vocabularies up to 32k, the fast case for V8's Map).
 */
export function learnMerges(counts: Map<string, number>, numMerges: number, idLimit: number, onProgress?: (done: number, total: number) => void): Array<[number, number]> {
  const K = idLimit;
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [piece, n] of counts) {
    const bytes = utf8Encode(piece);
    if (bytes.length < 2) continue; // no pairs: can never change
    words.push(Array.from(bytes));
    freqs.push(n);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  const addWord = (key: number, w: number): void => {
    const list = pairWords.get(key);
    if (list === undefined) pairWords.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < words.length; w++) {
    const word = words[w]!;
    const f = freqs[w]!;
    for (let i = 0; i + 1 < word.length; i++) {
      const key = word[i]! * K + word[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      addWord(key, w);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  const merges: Array<[number, number]> = [];
  const touched = new Set<number>();
  const bump = (key: number, delta: number): void => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + delta);
    touched.add(key);
  };
  const every = Math.max(1, Math.floor(numMerges / 200));
  onProgress?.(0, numMerges);
  while (merges.length < numMerges && heap.size > 0) {
    heap.pop();
    const key = heap.topKey;
    const count = heap.topCount;
    if (count <= 0 || pairCount.get(key) !== count) continue; // stale entry
    const a = Math.floor(key / K);
    const b = key - a * K;
    const c = 256 + merges.length;
    merges.push([a, b]);
    touched.clear();
    for (const w of pairWords.get(key) ?? []) {
      const word = words[w]!;
      const f = freqs[w]!;
      const out: number[] = [];
      let changed = false;
      for (let i = 0; i < word.length;) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          // The pair's left neighbour is already final (out), its right one not yet (word).
          if (out.length > 0) {
            const p = out[out.length - 1]!;
            bump(p * K + a, -f);
            bump(p * K + c, f);
            addWord(p * K + c, w);
          }
          if (i + 2 < word.length) {
            const n = word[i + 2]!;
            bump(b * K + n, -f);
            bump(c * K + n, f);
            addWord(c * K + n, w);
          }
          out.push(c);
          i += 2;
          changed = true;
        } else {
          out.push(word[i]!);
          i += 1;
        }
      }
      if (changed) words[w] = out;
    }
    pairCount.delete(key);
    pairWords.delete(key);
    touched.delete(key);
    for (const t of touched) {
      const n = pairCount.get(t)!;
      if (n > 0) heap.push(n, t);
      else { pairCount.delete(t); }
    }
    if (merges.length % every === 0) onProgress?.(merges.length, numMerges);
  }
  onProgress?.(merges.length, numMerges);
  return merges;
}

/** Max-heap of (count, pair key): higher count first, then smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  topCount = 0;
  topKey = 0;

  get size(): number { return this.counts.length; }

  private before(c1: number, k1: number, c2: number, k2: number): boolean {
    return c1 > c2 || (c1 === c2 && k1 < k2);
  }

  push(count: number, key: number): void {
    const C = this.counts;
    const Kk = this.keys;
    let i = C.length;
    C.push(count);
    Kk.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(count, key, C[p]!, Kk[p]!)) break;
      C[i] = C[p]!;
      Kk[i] = Kk[p]!;
      i = p;
    }
    C[i] = count;
    Kk[i] = key;
  }

  /** Removes the top; it is then in topCount / topKey. */
  pop(): void {
    const C = this.counts;
    const Kk = this.keys;
    this.topCount = C[0]!;
    this.topKey = Kk[0]!;
    const lc = C.pop()!;
    const lk = Kk.pop()!;
    const n = C.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const ch = r < n && this.before(C[r]!, Kk[r]!, C[l]!, Kk[l]!) ? r : l;
      if (!this.before(C[ch]!, Kk[ch]!, lc, lk)) break;
      C[i] = C[ch]!;
      Kk[i] = Kk[ch]!;
      i = ch;
    }
    C[i] = lc;
    Kk[i] = lk;
  }
}
