// tiktoken's ranks format (base64 token -> rank, as shipped in js-tiktoken/ranks/*), turned into
// merges. tiktoken has no merge list: it merges the adjacent pair whose concatenation has the
// lowest rank. The merge that makes each token is recovered by running that procedure on the
// token's own bytes with only lower ranks allowed: it must end in exactly two parts.

import { UserError } from '../util/errors.js';
import { bytesKey } from './bytes.js';
import type { BpeSpec, SpecialToken } from './types.js';

/**
 * Token bytes by rank. Accepts both the plain `.tiktoken` form (one "base64 rank" per line) and
 * js-tiktoken's compressed form (lines of "prefix firstRank base64 base64 ...", consecutive ranks).
 */
export function parseTiktokenRanks(text: string, source: string): Uint8Array[] {
  const byRank: Uint8Array[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const parts = line.trim().split(' ');
    const bad = (): never => { throw new UserError(`${source}: line ${i + 1} of the ranks is malformed`); };
    let first: number;
    let tokens: string[];
    if (parts.length === 2) { first = Number(parts[1]); tokens = [parts[0]!]; }
    else if (parts.length >= 3) { first = Number(parts[1]); tokens = parts.slice(2); }
    else return bad();
    if (!Number.isInteger(first) || first < 0) bad();
    tokens.forEach((t, k) => {
      const bytes = Buffer.from(t, 'base64');
      if (bytes.length === 0) bad();
      byRank[first + k] = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    });
  });
  return byRank;
}

/** A BpeSpec from tiktoken ranks (ids = ranks) and its special tokens. */
export function specFromRanks(byRank: Uint8Array[], specialTokens: Record<string, number>, source: string): BpeSpec {
  // Byte strings as Latin-1 JS strings: cheap to slice, join and hash.
  const keys: string[] = byRank.map((b) => bytesKey(b));
  const rankOf = new Map<string, number>();
  keys.forEach((k, r) => { if (k !== undefined) rankOf.set(k, r); });
  const specials: SpecialToken[] = Object.entries(specialTokens).map(([content, id]) => ({ content, id }));
  let size = byRank.length;
  for (const s of specials) size = Math.max(size, s.id + 1);
  const vocab: Array<Uint8Array | null> = new Array<Uint8Array | null>(size).fill(null);
  const merges: Array<readonly [number, number]> = [];
  for (let r = 0; r < byRank.length; r++) {
    const b = byRank[r];
    if (b === undefined) continue; // a gap; the tokenizer reports it unless a special fills it
    vocab[r] = b;
    if (b.length < 2) continue;
    const parts = mergeBelowRank(keys[r]!, r, rankOf);
    if (parts.length !== 2) throw new UserError(`${source}: token of rank ${r} cannot be made by merging two lower-ranked tokens`);
    merges.push([rankOf.get(parts[0]!)!, rankOf.get(parts[1]!)!]);
  }
  return { vocab, merges, specials };
}

/** tiktoken's byte-pair merge of the byte string `key`, using only tokens of rank below `limit`. */
function mergeBelowRank(key: string, limit: number, rankOf: Map<string, number>): string[] {
  const parts = key.split('');
  for (;;) {
    let best = limit;
    let at = -1;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = rankOf.get(parts[i]! + parts[i + 1]!);
      if (r !== undefined && r < best) { best = r; at = i; }
    }
    if (at < 0) return parts;
    parts.splice(at, 2, parts[at]! + parts[at + 1]!);
  }
}
