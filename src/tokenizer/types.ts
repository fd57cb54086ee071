// The tokenizer contract the rest of pocketlm codes against (see docs/DESIGN.md).

export interface Tokenizer {
  /** Number of ids, special tokens included; ids are 0 .. vocabSize-1. */
  readonly vocabSize: number;
  /** Id of `<|endoftext|>`; reading it throws a UserError if the tokenizer has no such token. */
  readonly eotId: number;
  /** Ids of the text; special-token strings in it are NOT matched (they encode as ordinary text). */
  encode(text: string): number[];
  /** Like encode, but special tokens found as whole strings become their own ids. */
  encodeWithSpecial(text: string): number[];
  /** Ids of arbitrary bytes (invalid UTF-8 included); decodeBytes gives the bytes back exactly. */
  encodeBytes(bytes: Uint8Array): number[];
  /** Text of the ids; invalid UTF-8 becomes U+FFFD, like TextDecoder (a leading BOM is kept). */
  decode(ids: ArrayLike<number>): string;
  /** The exact bytes of the ids (special tokens give the UTF-8 of their text). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** sha256 hex of the canonical tokenizer.json text (JSON.stringify of toJSON()). */
  hash(): string;
  /** The Hugging Face tokenizer.json object. */
  toJSON(): object;
}

/** A special token: matched as a whole string by encodeWithSpecial, never produced by merges. */
export interface SpecialToken {
  readonly content: string;
  readonly id: number;
}

export const END_OF_TEXT = '<|endoftext|>';

/**
 * The plain data a byte-level BPE tokenizer is built from, whatever file it came from.
 * `vocab[id]` holds the bytes of an ordinary token and null at the ids of special tokens.
 * `merges[rank]` is the pair of ids merged with that rank (lower merges first); the result is
 * the ordinary token whose bytes are the two concatenated.
 */
export interface BpeSpec {
  readonly vocab: ReadonlyArray<Uint8Array | null>;
  readonly merges: ReadonlyArray<readonly [number, number]>;
  readonly specials: readonly SpecialToken[];
}
