import type { Command } from 'commander';
import { parseCheckpointChoice } from '../train/inference.js';
import { exportHf } from '../export/hf.js';
import { exportGguf } from '../export/gguf-export.js';
import { EXPORT_DTYPES, type ExportReport } from '../export/types.js';
import { choiceFlag } from './flags.js';

const FORMATS = ['hf', 'gguf'] as const;

interface ExportFlags {
  run: string;
  checkpoint: string;
  format: string;
  dtype: string;
  out: string;
}

export function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a trained run as a Hugging Face Llama folder (transformers) or a GGUF file (llama.cpp)')
    .requiredOption('--run <dir>', 'run folder')
    .requiredOption('--format <format>', 'hf (a folder) | gguf (one file)')
    .requiredOption('--out <path>', 'the folder (hf) or file (gguf) to write; must not exist yet (an empty folder is fine)')
    .option('--checkpoint <which>', 'best (the lowest validation loss; the last when there is none yet) or last', 'best')
    .option('--dtype <type>', 'f32 | f16 | bf16 (bf16: hf only; norm weights stay f32 in GGUF)', 'f32')
    .action(async (f: ExportFlags) => {
      const format = choiceFlag('--format', f.format, FORMATS);
      const dtype = choiceFlag('--dtype', f.dtype, EXPORT_DTYPES);
      const checkpoint = parseCheckpointChoice('--checkpoint', f.checkpoint);
      let r: ExportReport & { notes?: string[] };
      if (format === 'hf') r = await exportHf(f.run, { checkpoint, dtype, out: f.out });
      else r = await exportGguf(f.run, { checkpoint, dtype, out: f.out });
      for (const n of r.notes ?? []) console.error(`note: ${n}`);
      console.log(`wrote ${r.out}: ${r.tensors} tensors, ${formatBytes(r.bytes)} (${dtype}) in ${r.seconds.toFixed(2)} s`);
    });
}
