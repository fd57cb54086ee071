/** What an export wrote: the file or folder, its total size, the tensors in it and the time it took. */
export interface ExportReport {
  out: string;
  bytes: number;
  tensors: number;
  seconds: number;
}

/** What an import made: the run folder, the model's parameter count, and lines worth telling the user. */
export interface ImportReport {
  runDir: string;
  params: number;
  notes: string[];
}

export type ExportDtype = 'f32' | 'f16' | 'bf16';
export const EXPORT_DTYPES: readonly ExportDtype[] = ['f32', 'f16', 'bf16'];
