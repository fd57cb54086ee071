import { UserError } from '../util/errors.js';
import type { CheckpointChoice } from '../train/inference.js';
import type { ExportDtype, ExportReport } from './types.js';

// Placeholder so the CLI compiles: the GGUF writer is being built separately and replaces this file.
export async function exportGguf(runDir: string, opts: { checkpoint?: CheckpointChoice; dtype?: ExportDtype; out: string }): Promise<ExportReport> {
  void runDir;
  void opts;
  throw new UserError('GGUF export is not built yet');
}
