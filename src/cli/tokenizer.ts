import fs from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { UserError } from '../util/errors.js';
import { loadBpeTokenizer, saveTokenizer, trainBpe, END_OF_TEXT } from '../tokenizer/index.js';
import { parseIdText, readDocuments, readTextFile, splitLines } from '../tokenizer/text-io.js';
import { firstInvalidUtf8 } from '../data/utf8.js';

// `pocketlm tokenizer train|encode|decode|info`: parses arguments and prints; the work is in
// src/tokenizer. Wherever a tokenizer is named, --tokenizer takes a tokenizer.json path or 'gpt2'.

function parseVocabSize(v: string): number {
  const n = /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new UserError(`--vocab-size ${JSON.stringify(v)} is not a whole number`);
  return n;
}

function readInput(file: string | undefined): string {
  if (file !== undefined) return readTextFile(file);
  return fs.readFileSync(0, 'utf8');
}

/** The input's bytes: a file (errors as readTextFile words them) or standard input. */
function readInputBytes(file: string | undefined): Uint8Array {
  if (file === undefined) return fs.readFileSync(0);
  try {
    return fs.readFileSync(file);
  } catch (e) {
    readTextFile(file); // fails the same way, with its one-line UserError
    throw e;
  }
}

/**
 * The input as text, refusing invalid UTF-8 (decoding would silently turn it into U+FFFD,
 * so decode(encode(x)) would not give x back).
 */
function readUtf8Input(file: string | undefined): string {
  const bytes = readInputBytes(file);
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    const hex = bytes[bad]!.toString(16).padStart(2, '0');
    throw new UserError(`${file ?? 'standard input'} is not valid UTF-8 at byte ${bad} (0x${hex}); use --bytes to encode its raw bytes exactly`);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
}

/** Byte lines, split at '\n' like splitLines (a final line break ends the last line). */
function splitByteLines(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      lines.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length || lines.length === 0) lines.push(bytes.subarray(start));
  return lines;
}

export function registerTokenizer(program: Command): void {
  const cmd = program.command('tokenizer').description('train and use byte-level BPE tokenizers (tokenizer.json, or gpt2)');

  cmd.command('train')
    .description('train a byte-level BPE tokenizer on text files (documents separated by <|endoftext|>)')
    .requiredOption('--data <paths...>', 'training text files')
    .requiredOption('--vocab-size <n>', 'total number of ids: 256 bytes + merges + special tokens', parseVocabSize)
    .requiredOption('--out <file>', 'where to write tokenizer.json')
    .option('--special <tokens...>', 'special tokens (ids right after the merged tokens)', [END_OF_TEXT])
    .action(async (opts: { data: string[]; vocabSize: number; out: string; special: string[] }) => {
      const t0 = performance.now();
      const { docs, chars } = readDocuments(opts.data);
      const bar = new cliProgress.SingleBar({
        format: 'merges {bar} {value}/{total} ({percentage}%) eta {eta}s',
        stream: process.stderr,
        hideCursor: true,
      }, cliProgress.Presets.shades_classic);
      let started = false;
      const tok = (() => {
        try {
          return trainBpe(docs, {
            vocabSize: opts.vocabSize,
            specialTokens: opts.special,
            onProgress: (done, total) => {
              if (!started) { bar.start(total, done); started = true; } else bar.update(done);
            },
          });
        } finally {
          if (started) bar.stop();
        }
      })();
      await saveTokenizer(tok, opts.out);
      const secs = (performance.now() - t0) / 1000;
      const note = tok.vocabSize < opts.vocabSize ? ` (asked ${opts.vocabSize}: the text ran out of pairs to merge)` : '';
      process.stdout.write(`wrote ${opts.out}: ${tok.vocabSize} ids = 256 bytes + ${tok.numMerges} merges + ${tok.specials.length} special${note}; ` +
        `${docs.length} documents, ${(chars / 1e6).toFixed(2)}M chars, ${secs.toFixed(1)} s\n`);
    });

  cmd.command('encode')
    .description('print token ids: one line of ids per input line, or one JSON array with --json')
    .requiredOption('--tokenizer <spec>', "tokenizer.json path, or 'gpt2'")
    .option('--in <file>', 'input text file (default: standard input)')
    .option('--json', 'encode the whole input as one sequence and print a JSON array')
    .option('--allow-special', 'match special tokens such as <|endoftext|> in the text')
    .option('--bytes', 'encode the raw bytes, invalid UTF-8 included (decode --bytes gives them back exactly)')
    .action(async (opts: { tokenizer: string; in?: string; json?: boolean; allowSpecial?: boolean; bytes?: boolean }) => {
      if (opts.bytes && opts.allowSpecial) throw new UserError('--bytes and --allow-special cannot be combined (special tokens are matched in text, not in raw bytes)');
      const tok = await loadBpeTokenizer(opts.tokenizer);
      let seqs: number[][];
      if (opts.bytes) {
        const bytes = readInputBytes(opts.in);
        seqs = opts.json ? [tok.encodeBytes(bytes)] : splitByteLines(bytes).map((line) => tok.encodeBytes(line));
      } else {
        const text = readUtf8Input(opts.in);
        const enc = (s: string): number[] => (opts.allowSpecial ? tok.encodeWithSpecial(s) : tok.encode(s));
        seqs = opts.json ? [enc(text)] : splitLines(text).map(enc);
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(seqs[0])}\n`);
        return;
      }
      process.stdout.write(seqs.length ? `${seqs.map((ids) => ids.join(' ')).join('\n')}\n` : '');
    });

  cmd.command('decode')
    .description('print the text of token ids (whitespace-separated, one sequence per line, or a JSON array)')
    .requiredOption('--tokenizer <spec>', "tokenizer.json path, or 'gpt2'")
    .option('--in <file>', 'input file of ids (default: standard input)')
    .option('--bytes', 'write the raw bytes of the tokens (invalid UTF-8 kept, not replaced by U+FFFD)')
    .action(async (opts: { tokenizer: string; in?: string; bytes?: boolean }) => {
      const tok = await loadBpeTokenizer(opts.tokenizer);
      const { lines, json } = parseIdText(readInput(opts.in), opts.in ?? 'standard input');
      if (opts.bytes) {
        const parts: Uint8Array[] = [];
        for (const ids of lines) parts.push(tok.decodeBytes(ids), ...(json ? [] : [Uint8Array.of(0x0a)]));
        process.stdout.write(Buffer.concat(parts));
      } else if (json) process.stdout.write(tok.decode(lines[0]!));
      else process.stdout.write(lines.length ? `${lines.map((ids) => tok.decode(ids)).join('\n')}\n` : '');
    });

  cmd.command('info')
    .description('print a tokenizer\'s size, special tokens and hash')
    .requiredOption('--tokenizer <spec>', "tokenizer.json path, or 'gpt2'")
    .action(async (opts: { tokenizer: string }) => {
      const tok = await loadBpeTokenizer(opts.tokenizer);
      const specials = tok.specials.map((s) => `${s.content}=${s.id}`).join(' ') || '(none)';
      process.stdout.write(`vocab size ${tok.vocabSize}, merges ${tok.numMerges}, special ${specials}\nsha256 ${tok.hash()}\n`);
    });
}
