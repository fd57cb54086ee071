import type { Command } from 'commander';
import path from 'node:path';
import { computeBaselines, readMeta, readMetaFor, type BaselineEntry } from '../data/index.js';
import { loadTokenizer } from '../tokenizer/index.js';

export function registerBaselines(program: Command): void {
  program
    .command('baselines')
    .description('uniform / unigram / bigram / trigram cross-entropy on a prepared dataset\'s validation split')
    .argument('<dir>', 'a folder made by `pocketlm prepare`')
    .option('--json', 'print JSON')
    .option('--tokenizer <file>', 'check that this tokenizer made the token files')
    .action(async (dir: string, f: { json?: boolean; tokenizer?: string }) => {
      if (f.tokenizer) readMetaFor(dir, (await loadTokenizer(f.tokenizer)).hash(), `tokenizer ${f.tokenizer}`);
      const meta = readMeta(dir);
      // the folder's own tokenizer.json must be the one recorded in meta.json
      readMetaFor(dir, (await loadTokenizer(path.join(dir, 'tokenizer.json'))).hash(), path.join(dir, 'tokenizer.json'));
      const b = await computeBaselines(dir);
      if (f.json) { console.log(JSON.stringify(b, null, 2)); return; }
      const rows: Array<[string, BaselineEntry]> = [['uniform', b.uniform], ['unigram', b.unigram], ['bigram', b.bigram], ['trigram', b.trigram]];
      console.log(`baselines on ${dir} (val: ${meta.splits.val.tokens.toLocaleString('en-US')} tokens, ${meta.splits.val.bytes.toLocaleString('en-US')} bytes; vocab ${meta.vocabSize})`);
      console.log(`${'model'.padEnd(9)} ${'nats/token'.padStart(10)} ${'bits/byte'.padStart(10)}  best smoothing`);
      for (const [name, e] of rows) console.log(`${name.padEnd(9)} ${e.nats.toFixed(4).padStart(10)} ${e.bpb.toFixed(4).padStart(10)}  ${e.smoothing ?? '-'}`);
      const names = Object.keys(b.unigram.variants ?? {});
      console.log(`\nall smoothings (nats/token):\n${'model'.padEnd(9)} ${names.map((n) => n.padStart(12)).join(' ')}`);
      for (const [name, e] of rows.slice(1)) console.log(`${name.padEnd(9)} ${names.map((n) => (e.variants?.[n]?.nats.toFixed(4) ?? '-').padStart(12)).join(' ')}`);
      console.log(`\n${b.info.choice}`);
    });
}
