// Messages between the page (main.ts) and the training worker (train-worker.ts).
import type { Baselines } from '../../data/baselines.js';
import type { RunConfig } from '../../train/config.js';
import type { LogRecord } from '../../train/log.js';

export interface StartRequest {
  type: 'start';
  presetName: string;
  config: RunConfig;
  /** Where the text came from (shown, and kept with the run). */
  source: string;
  train: string;
  val: string;
  threads: number;
}

export type ToWorker =
  | StartRequest
  /** Continue the run saved in IndexedDB (answered with 'none' when there is none). */
  | { type: 'resume'; threads: number }
  | { type: 'stop' }
  | { type: 'sample'; prompt: string; tokens: number; temperature: number }
  | { type: 'download'; format: 'safetensors' | 'gguf' }
  | { type: 'forget' };

export interface RunInfo {
  presetName: string;
  source: string;
  params: number;
  threads: number;
  isolated: boolean;
  kernels: string;
  /** The wasm build in use: 'relaxed' (FMA) or 'simd'; null for the plain JavaScript kernels. */
  build: string | null;
  vocab: number;
  trainTokens: number;
  valTokens: number;
  steps: number;
  resumedFromStep: number | null;
}

export type FromWorker =
  | { type: 'status'; text: string }
  | { type: 'none' }
  | { type: 'started'; info: RunInfo; log: LogRecord[]; samples: { step: number; samples: string[] }[]; baselines: Baselines }
  | { type: 'step'; record: LogRecord }
  | { type: 'samples'; step: number; samples: string[] }
  | { type: 'saved'; step: number; bytes: number }
  | { type: 'sampled'; prompt: string; text: string }
  | { type: 'file'; name: string; blob: Blob }
  | { type: 'done'; step: number }
  | { type: 'error'; message: string };
