// The byte-level BPE tokenizer: built from a BpeSpec (trained here or loaded from a file).

import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import { bytesKey, splitUtf8Runs, utf8Encode } from './bytes.js';
import { toHfJson } from './hf-format.js';
import { applyMerges, MAX_VOCAB, MergeTable } from './merges.js';
import { forEachPiece, specialTokensRegex, splitOnSpecials } from './pretokenize.js';
import { END_OF_TEXT, type BpeSpec, type SpecialToken, type Tokenizer } from './types.js';

/** Cached pre-tokens before the cache is emptied (bounds memory on endless distinct words). */
const CACHE_LIMIT = 1 << 17;

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specials: readonly SpecialToken[];
  private readonly spec: BpeSpec;
  private readonly source: string;
  private readonly tokenBytes: ReadonlyArray<Uint8Array>;
  private readonly byteToId: Int32Array;
  private readonly table: MergeTable;
  private readonly specialById: Map<number, string>;
  private readonly specialByContent: Map<string, number>;
  private readonly onPiece: (piece: string) => void;
  private sink: number[] = [];
  private readonly specialRe: RegExp | null;
  private readonly cache = new Map<string, number[]>();
  private hashHex: string | null = null;

  /** Validates the spec; problems are UserErrors naming `source` (a file path, or 'gpt2'). */
  constructor(spec: BpeSpec, source: string) {
    this.spec = spec;
    this.source = source;
    const V = spec.vocab.length;
    if (V > MAX_VOCAB) throw new UserError(`${source}: vocabulary of ${V} tokens exceeds the maximum ${MAX_VOCAB}`);
    this.vocabSize = V;

    this.specialById = new Map();
    this.specialByContent = new Map();
    for (const s of spec.specials) {
      if (!Number.isInteger(s.id) || s.id < 0 || s.id >= V) throw new UserError(`${source}: special token ${JSON.stringify(s.content)} has id ${s.id} outside 0..${V - 1}`);
      if (s.content.length === 0) throw new UserError(`${source}: a special token is the empty string`);
      if (spec.vocab[s.id] !== null) throw new UserError(`${source}: id ${s.id} is both an ordinary token and the special token ${JSON.stringify(s.content)}`);
      if (this.specialById.has(s.id)) throw new UserError(`${source}: id ${s.id} is given to two special tokens`);
      if (this.specialByContent.has(s.content)) throw new UserError(`${source}: special token ${JSON.stringify(s.content)} appears twice`);
      this.specialById.set(s.id, s.content);
      this.specialByContent.set(s.content, s.id);
    }
    this.specials = [...spec.specials].sort((a, b) => a.id - b.id);

    const tokenBytes: Uint8Array[] = new Array<Uint8Array>(V);
    const idOfBytes = new Map<string, number>();
    this.byteToId = new Int32Array(256).fill(-1);
    for (let id = 0; id < V; id++) {
      const b = spec.vocab[id];
      if (b === null || b === undefined) {
        const content = this.specialById.get(id);
        if (content === undefined) throw new UserError(`${source}: id ${id} has no token (ids must run 0..${V - 1} without gaps)`);
        tokenBytes[id] = utf8Encode(content);
        continue;
      }
      if (b.length === 0) throw new UserError(`${source}: token id ${id} is empty`);
      const key = bytesKey(b);
      if (idOfBytes.has(key)) throw new UserError(`${source}: ids ${idOfBytes.get(key)} and ${id} are the same token`);
      idOfBytes.set(key, id);
      tokenBytes[id] = b;
      if (b.length === 1) this.byteToId[b[0]!] = id;
    }
    for (let v = 0; v < 256; v++) {
      if (this.byteToId[v]! < 0) throw new UserError(`${source}: no token for byte 0x${v.toString(16).padStart(2, '0')} (a byte-level vocabulary needs all 256)`);
    }
    this.tokenBytes = tokenBytes;

    const results = new Int32Array(spec.merges.length);
    spec.merges.forEach(([a, b], r) => {
      for (const x of [a, b]) {
        if (!Number.isInteger(x) || x < 0 || x >= V || spec.vocab[x] === null) throw new UserError(`${source}: merge ${r} uses id ${x}, which is not an ordinary token`);
      }
      const merged = new Uint8Array(tokenBytes[a]!.length + tokenBytes[b]!.length);
      merged.set(tokenBytes[a]!, 0);
      merged.set(tokenBytes[b]!, tokenBytes[a]!.length);
      const id = idOfBytes.get(bytesKey(merged));
      if (id === undefined) throw new UserError(`${source}: merge ${r} makes a token that is not in the vocabulary`);
      results[r] = id;
    });
    this.table = new MergeTable(spec.merges, results);
    // One bound callback for the scanner, writing to `sink` (set per call): no closure per encode.
    this.onPiece = (piece: string): void => {
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        ids = this.mergeBytes(utf8Encode(piece));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      const out = this.sink;
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    };
    this.specialRe = specialTokensRegex(this.specials.map((s) => s.content));
  }

  get eotId(): number {
    const id = this.specialByContent.get(END_OF_TEXT);
    if (id === undefined) throw new UserError(`${this.source} has no ${END_OF_TEXT} special token`);
    return id;
  }

  /** Id of a special token by its text, or undefined. */
  specialId(content: string): number | undefined {
    return this.specialByContent.get(content);
  }

  /** Number of merge rules. */
  get numMerges(): number {
    return this.table.size;
  }

  /** The data this tokenizer was built from (read-only). */
  toSpec(): BpeSpec {
    return this.spec;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    this.encodeOrdinaryInto(text, out);
    return out;
  }

  encodeWithSpecial(text: string): number[] {
    const out: number[] = [];
    for (const seg of splitOnSpecials(this.specialRe, text)) {
      if (seg.special) out.push(this.specialByContent.get(seg.text)!);
      else this.encodeOrdinaryInto(seg.text, out);
    }
    return out;
  }

  /**
   * Well-formed UTF-8 stretches are encoded exactly like encode() of their text; each maximal run
   * of bytes that are not well-formed UTF-8 is one pre-token of its own (merges may join its
   * bytes, never across its ends). For valid UTF-8, encodeBytes(utf8(s)) equals encode(s).
   */
  encodeBytes(bytes: Uint8Array): number[] {
    const out: number[] = [];
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    for (const run of splitUtf8Runs(bytes)) {
      const part = bytes.subarray(run.start, run.end);
      if (run.valid) this.encodeOrdinaryInto(decoder.decode(part), out);
      else for (const id of this.mergeBytes(part)) out.push(id);
    }
    return out;
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf(ids[i]!).length;
    const out = new Uint8Array(total);
    let off = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes[ids[i]!]!;
      out.set(b, off);
      off += b.length;
    }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    // ignoreBOM keeps a leading U+FEFF: by default TextDecoder would silently drop it.
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.decodeBytes(ids));
  }

  /** The bytes of one id (UserError if the id is not in the vocabulary). */
  bytesOf(id: number): Uint8Array {
    const b = Number.isInteger(id) ? this.tokenBytes[id] : undefined;
    if (b === undefined) throw new UserError(`token id ${id} is not in the vocabulary (0..${this.vocabSize - 1})`);
    return b;
  }

  hash(): string {
    if (this.hashHex === null) this.hashHex = createHash('sha256').update(this.canonicalJson()).digest('hex');
    return this.hashHex;
  }

  toJSON(): object {
    return toHfJson(this.spec);
  }

  /** The canonical tokenizer.json text (compact; the saved file is this, pretty-printed). */
  canonicalJson(): string {
    return JSON.stringify(this.toJSON());
  }

  /** Encodes ordinary text (no special matching), appending to `out`. */
  private encodeOrdinaryInto(text: string, out: number[]): void {
    this.sink = out;
    try {
      forEachPiece(text, this.onPiece);
    } finally {
      this.sink = [];
    }
  }

  /** BPE of one pre-token's bytes. */
  private mergeBytes(bytes: Uint8Array): number[] {
    const syms: number[] = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) syms[i] = this.byteToId[bytes[i]!]!;
    return applyMerges(syms, this.table);
  }
}
