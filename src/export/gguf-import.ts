import { UserError } from '../util/errors.js';
import type { ImportReport } from './types.js';

// Placeholder so the CLI compiles: the GGUF reader is being built separately and replaces this file.
export async function importGguf(file: string, outRunDir: string): Promise<ImportReport> {
  void file;
  void outRunDir;
  throw new UserError('GGUF import is not built yet');
}
