// Pre-tokenization: the GPT-2 split pattern (merges never cross its boundaries) and the
// splitting of text around special tokens.

/** GPT-2's pattern, character for character as in GPT-2, tiktoken and Hugging Face's ByteLevel. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** A fresh global regex for the pattern (each tokenizer owns one: `lastIndex` is state). */
export function gpt2Regex(): RegExp {
  return new RegExp(GPT2_PATTERN, 'gu');
}

/**
 * Calls `onPiece` for each pre-token of `text` in order. The pieces concatenate back to `text`:
 * the pattern's last alternatives (`\s+(?!\S)|\s+`) together with the others match every
 * character, so nothing is skipped.
 */
export function forEachPiece(re: RegExp, text: string, onPiece: (piece: string) => void): void {
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) onPiece(m[0]);
}

/** All pre-tokens of `text` (for tests and tools; the hot paths use forEachPiece). */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  forEachPiece(gpt2Regex(), text, (p) => out.push(p));
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
