import { createHash } from 'node:crypto';
import type { DataTokenizer, TokenizerApi } from './tokenizer-api.js';

/**
 * A byte-level stand-in for the real tokenizer, for the data tests: ids 0-255 are UTF-8
 * bytes, 256 is <|endoftext|>, and the vocabulary is padded to the size asked for.
 */
export function byteTokenizer(vocabSize = 257): DataTokenizer {
  const dec = new TextDecoder();
  return {
    vocabSize,
    eotId: 256,
    encode: (text) => [...Buffer.from(text, 'utf8')],
    decode: (ids) => {
      const parts: string[] = [];
      let bytes: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (id < 256) bytes.push(id);
        else { parts.push(dec.decode(new Uint8Array(bytes)), '<|endoftext|>'); bytes = []; }
      }
      parts.push(dec.decode(new Uint8Array(bytes)));
      return parts.join('');
    },
    hash: () => createHash('sha256').update(`byte-standin-${vocabSize}`).digest('hex'),
    toJSON: () => ({ model: { type: 'byte-standin' }, vocabSize }),
  };
}

export function byteTokenizerApi(): TokenizerApi & { trainedOn: string[][] } {
  const trainedOn: string[][] = [];
  return {
    trainedOn,
    loadTokenizer: async (spec) => {
      const m = /^byte(\d+)?$/.exec(spec);
      if (!m) throw new Error(`stand-in cannot load ${spec}`);
      return byteTokenizer(m[1] ? Number(m[1]) : 257);
    },
    trainTokenizer: (texts, opts) => {
      trainedOn.push([...texts]);
      return byteTokenizer(opts.vocabSize);
    },
    encodeParallel: async (tok, docs) => docs.map((d) => Uint32Array.from(tok.encode(d))),
  };
}
