import fs from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { UserError } from '../util/errors.js';
import { loadBpeTokenizer, saveTokenizer, trainBpe, END_OF_TEXT } from '../tokenizer/index.js';
import { parseIdText, readDocuments, readTextFile, splitLines } from '../tokenizer/text-io.js';

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
    .action(async (opts: { tokenizer: string; in?: string; json?: boolean; allowSpecial?: boolean }) => {
      const tok = await loadBpeTokenizer(opts.tokenizer);
      const text = readInput(opts.in);
      const enc = (s: string): number[] => (opts.allowSpecial ? tok.encodeWithSpecial(s) : tok.encode(s));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(enc(text))}\n`);
        return;
      }
      const out = splitLines(text).map((line) => enc(line).join(' '));
      process.stdout.write(out.length ? `${out.join('\n')}\n` : '');
    });

  cmd.command('decode')
    .description('print the text of token ids (whitespace-separated, one sequence per line, or a JSON array)')
    .requiredOption('--tokenizer <spec>', "tokenizer.json path, or 'gpt2'")
    .option('--in <file>', 'input file of ids (default: standard input)')
    .action(async (opts: { tokenizer: string; in?: string }) => {
      const tok = await loadBpeTokenizer(opts.tokenizer);
      const { lines, json } = parseIdText(readInput(opts.in), opts.in ?? 'standard input');
      if (json) process.stdout.write(tok.decode(lines[0]!));
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
