// Pre-tokenization: the GPT-2 split pattern (merges never cross its boundaries) and the
// splitting of text around special tokens.

/** GPT-2's pattern, character for character as in GPT-2, tiktoken and Hugging Face's ByteLevel. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** A fresh global regex for the pattern (each tokenizer owns one: `lastIndex` is state). */
export function gpt2Regex(): RegExp {
  return new RegExp(GPT2_PATTERN, 'gu');
}

// Character classes of the pattern: the three it names, and "other" ([^\s\p{L}\p{N}]).
const OTHER = 0;
const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;

/**
 * The class of every BMP code unit, from JavaScript's own \p{L}, \p{N} and \s (so it agrees with
 * the regex by construction). Surrogates are OTHER here; pairs are classified as code points.
 */
function buildBmpClasses(): Uint8Array {
  const table = new Uint8Array(65536);
  for (const [lo, hi] of [[0, 0xd7ff], [0xe000, 0xffff]] as const) {
    const codes: number[] = [];
    for (let c = lo; c <= hi; c++) codes.push(c);
    let s = '';
    for (let i = 0; i < codes.length; i += 4096) s += String.fromCharCode(...codes.slice(i, i + 4096));
    for (const [re, k] of [[/\p{L}+/gu, LETTER], [/\p{N}+/gu, NUMBER], [/\s+/gu, SPACE]] as const) {
      for (const m of s.matchAll(re)) table.fill(k, lo + m.index, lo + m.index + m[0].length);
    }
  }
  return table;
}

// Built on first use, not at import (~20 ms that every CLI command would pay otherwise). A memo of a
// pure function: it never changes once set.
let bmpClassMemo: Uint8Array | null = null;
function bmpClasses(): Uint8Array {
  return (bmpClassMemo ??= buildBmpClasses());
}
const ASTRAL_LETTER = /^\p{L}$/u;
const ASTRAL_NUMBER = /^\p{N}$/u;

function astralClass(cp: number): number {
  const s = String.fromCodePoint(cp);
  return ASTRAL_LETTER.test(s) ? LETTER : ASTRAL_NUMBER.test(s) ? NUMBER : OTHER; // no astral whitespace
}

/**
 * Calls `onPiece` for each pre-token of `text`, in order: exactly the matches of GPT2_PATTERN
 * (tested against the regex), found by a hand-written scanner several times faster than V8's
 * regex engine on this pattern. The pieces concatenate back to `text`.
 *
 * The pattern, alternative by alternative, at each position: a contraction ('s 't 're 've 'm 'll
 * 'd, lower case only); else an optional U+0020 then a run of letters, or of numbers, or of
 * "other" characters (the class of the first non-space character decides); else whitespace: the
 * whole run if it ends the text, otherwise all but its last character (`\s+(?!\S)` backtracks
 * one so that last space can lead the next word), or the single character if the run is one long.
 */
export function forEachPiece(text: string, onPiece: (piece: string) => void): void {
  const n = text.length;
  const table = bmpClasses();
  let i = 0;
  while (i < n) {
    const start = i;
    const c = text.charCodeAt(i);
    if (c === 39 && i + 1 < n) { // an apostrophe: contractions come first in the pattern
      const a = text.charCodeAt(i + 1);
      if (a === 115 || a === 116 || a === 109 || a === 100) { onPiece(text.slice(i, i + 2)); i += 2; continue; } // s t m d
      if (i + 2 < n) {
        const b = text.charCodeAt(i + 2);
        if ((a === 114 && b === 101) || (a === 118 && b === 101) || (a === 108 && b === 108)) { onPiece(text.slice(i, i + 3)); i += 3; continue; } // re ve ll
      }
    }
    let j = i;
    let k = SPACE;
    if (c === 32 && i + 1 < n) {
      // ' ?X+': the space joins a following letter / number / other run
      const kw = classAt(text, i + 1, n, table);
      if ((kw & 3) !== SPACE) { k = kw & 3; j = i + 1 + (kw >> 2); }
    }
    if (j === i) {
      const kw = classAt(text, i, n, table);
      k = kw & 3;
      j = i + (kw >> 2);
    }
    if (k !== SPACE) {
      while (j < n) {
        const kw = classAt(text, j, n, table);
        if ((kw & 3) !== k) break;
        j += kw >> 2;
      }
    } else {
      while (j < n && table[text.charCodeAt(j)] === SPACE) j++; // whitespace is all in the BMP
      if (j < n && j - start >= 2) j--;
    }
    onPiece(text.slice(start, j));
    i = j;
  }
}

/**
 * Class of the code point at i, packed with its width in code units: class | width << 2 (a lone
 * surrogate is OTHER, width 1). Packed rather than a tuple: this runs once per character.
 */
function classAt(text: string, i: number, n: number, table: Uint8Array): number {
  const c = text.charCodeAt(i);
  if (c < 0xd800 || c > 0xdbff || i + 1 >= n) return table[c]! | 4;
  const d = text.charCodeAt(i + 1);
  if (d < 0xdc00 || d > 0xdfff) return OTHER | 4;
  return astralClass(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000) | 8;
}

/** The pattern's matches via the regex itself: the reference the scanner is tested against. */
export function forEachPieceRegex(text: string, onPiece: (piece: string) => void): void {
  const re = gpt2Regex();
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) onPiece(m[0]);
}

/** All pre-tokens of `text` (for tests and tools; the hot paths use forEachPiece). */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  forEachPiece(text, (p) => out.push(p));
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

/**
 * A regex matching any of the special tokens as a whole string; longer tokens first, so when one
 * is a prefix of another the longer wins (leftmost-longest, as Hugging Face's added tokens).
 * Null when there are none.
 */
export function specialTokensRegex(tokens: readonly string[]): RegExp | null {
  if (tokens.length === 0) return null;
  const sorted = [...tokens].sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
  return new RegExp(sorted.map(escapeRegex).join('|'), 'g');
}

/** A stretch of text: either ordinary text or one special token. */
export type Segment = { text: string; special: false } | { text: string; special: true };

/** Splits text at whole-string occurrences of special tokens, in order; empty stretches are dropped. */
export function splitOnSpecials(re: RegExp | null, text: string): Segment[] {
  if (re === null) return text.length ? [{ text, special: false }] : [];
  const out: Segment[] = [];
  re.lastIndex = 0;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) out.push({ text: text.slice(last, m.index), special: false });
    out.push({ text: m[0], special: true });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), special: false });
  return out;
}
