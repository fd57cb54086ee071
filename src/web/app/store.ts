// Where a browser run is kept between visits: one record in IndexedDB (available in workers,
// stores typed arrays as they are, no size limit beyond the origin's quota). The trainer sees
// only the RunStore interface.
import type { LoaderState } from '../../data/loader.js';
import type { Baselines } from '../../data/baselines.js';
import type { RunConfig } from '../../train/config.js';
import type { LogRecord } from '../../train/log.js';
import type { LossAverageState } from '../../train/recovery.js';

/** Everything a run needs to continue exactly where it stopped. */
export interface SavedRun {
  version: 1;
  presetName: string;
  source: string;
  config: RunConfig;
  tokenizerJson: string;
  train: Uint16Array | Uint32Array;
  val: Uint16Array | Uint32Array;
  /** UTF-8 bytes of the validation text, for bits per byte. */
  valBytes: number;
  step: number;
  tokens: number;
  elapsed: number;
  params: Float32Array;
  optimState: Record<string, Float32Array>;
  optimScalars: Record<string, number>;
  loader: LoaderState;
  rng: unknown;
  lossAverage: LossAverageState;
  log: LogRecord[];
  samples: { step: number; samples: string[] }[];
  baselines: Baselines;
  savedAt: number;
}

export interface RunStore {
  load(): Promise<SavedRun | null>;
  save(run: SavedRun): Promise<void>;
  clear(): Promise<void>;
}

const DB = 'pocketlm';
const STORE = 'runs';
const KEY = 'current';

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

export class IndexedDbStore implements RunStore {
  private db: Promise<IDBDatabase> | null = null;

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const r = indexedDB.open(DB, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error ?? new Error('cannot open IndexedDB'));
    });
    return this.db;
  }

  private async tx<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    const t = db.transaction(STORE, mode);
    const result = request(f(t.objectStore(STORE)));
    // the write is durable only when the transaction completes, not when the request succeeds
    await new Promise<void>((resolve, reject) => {
      t.oncomplete = () => resolve();
      t.onerror = () => reject(t.error ?? new Error('IndexedDB transaction failed'));
      t.onabort = () => reject(t.error ?? new Error('IndexedDB transaction aborted (quota?)'));
    });
    return result;
  }

  async load(): Promise<SavedRun | null> {
    const r = (await this.tx('readonly', (s) => s.get(KEY))) as SavedRun | undefined;
    return r && r.version === 1 ? r : null;
  }

  async save(run: SavedRun): Promise<void> {
    await this.tx('readwrite', (s) => s.put(run, KEY));
  }

  async clear(): Promise<void> {
    await this.tx('readwrite', (s) => s.delete(KEY));
  }
}
