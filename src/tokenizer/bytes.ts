// Byte-level helpers: GPT-2's byte <-> printable-character mapping (used for the vocabulary
// strings of tokenizer.json / vocab.json / merges.txt) and UTF-8 encoding and validation.

/**
 * GPT-2's `bytes_to_unicode`: each of the 256 byte values gets one printable character, so a
 * token's bytes can be written as a JSON string without spaces or control characters. The
 * printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 map to
 * U+0100, U+0101, ... in increasing byte order (so a space 0x20 becomes 'Ġ' U+0120).
 */
function buildByteToChar(): string[] {
  const table: string[] = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + next++);
  }
  return table;
}

const BYTE_TO_CHAR: readonly string[] = Object.freeze(buildByteToChar());
const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** The GPT-2 byte-level string of some bytes (one character per byte). */
export function bytesToUnicodeString(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}

/** Inverse of bytesToUnicodeString; null if a character is outside the 256-character alphabet. */
export function unicodeStringToBytes(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const b = CHAR_TO_BYTE.get(s[i]!);
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

/** Bytes as a Latin-1 string: a cheap, exact Map key for a byte sequence. */
export function bytesKey(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/**
 * UTF-8 bytes of a JS string. Lone surrogates become U+FFFD (EF BF BD), exactly as TextEncoder
 * does (a JS string with a lone surrogate has no UTF-8 form; this is the documented choice).
 */
export function utf8Encode(s: string): Uint8Array {
  // Fast path: most pre-tokens are ASCII.
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) { ascii = false; break; }
  }
  if (ascii) {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  return UTF8_ENCODER.encode(s);
}

const UTF8_ENCODER = new TextEncoder();

/**
 * Length of the well-formed UTF-8 sequence starting at `i` (Unicode Table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if the byte at `i` does not start one.
 */
export function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const n = b.length;
  const cont = (k: number): boolean => k < n && (b[k]! & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (i + 1 >= n) return 0;
    const c1 = b[i + 1]!;
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf;
    return c1 >= lo && c1 <= hi && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (i + 1 >= n) return 0;
    const c1 = b[i + 1]!;
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf;
    return c1 >= lo && c1 <= hi && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

/** One run of a byte input: either well-formed UTF-8 (valid) or bytes that start no valid sequence. */
export interface ByteRun { start: number; end: number; valid: boolean }

/** Splits bytes into maximal runs of well-formed UTF-8 and of invalid bytes, in order. */
export function splitUtf8Runs(b: Uint8Array): ByteRun[] {
  const runs: ByteRun[] = [];
  let i = 0;
  while (i < b.length) {
    const start = i;
    const len0 = utf8SequenceLength(b, i);
    const valid = len0 > 0;
    while (i < b.length) {
      const len = utf8SequenceLength(b, i);
      if ((len > 0) !== valid) break;
      i += valid ? len : 1;
    }
    runs.push({ start, end: i, valid });
  }
  return runs;
}
