import type { Command } from 'commander';
import { importHf } from '../export/hf.js';
import { importGguf } from '../export/gguf-import.js';
import { choiceFlag } from './flags.js';

const SOURCES = ['hf', 'gguf'] as const;

interface ImportFlags {
  from: string;
  out: string;
}

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('make a run folder (for sample, eval and train --resume) from a Hugging Face Llama folder or a GGUF file')
    .argument('<path>', 'the Hugging Face model folder or the .gguf file')
    .requiredOption('--from <format>', 'hf | gguf')
    .requiredOption('--out <run>', 'the run folder to create; must not exist yet (an empty folder is fine)')
    .action(async (source: string, f: ImportFlags) => {
      const from = choiceFlag('--from', f.from, SOURCES);
      const r = from === 'hf' ? await importHf(source, f.out) : await importGguf(source, f.out);
      console.log(`imported ${source} into ${r.runDir}: ${r.params.toLocaleString('en-US')} parameters`);
      for (const n of r.notes) console.log(`note: ${n}`);
    });
}
