/**
 * Follows a JSONL file another process appends to (log.jsonl, samples.jsonl, journal.jsonl):
 * each poll returns the complete lines added since the last one. A file replaced (a new inode:
 * the atomic rewrite of a resumed run's log) or shortened is read again from the start, and the
 * poll says so (`reset`), so the reader can drop what it had. A last line without its newline
 * (a writer mid-append, or killed) is held back until it is complete.
 */
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** At most this much is read per poll, so one huge log cannot stall the server; the rest comes at the next polls. */
const MAX_READ = 4 * 1024 * 1024;

export interface TailResult {
  /** The file was replaced, shortened or removed: `lines` start again from its beginning. */
  reset: boolean;
  lines: string[];
}

export class JsonlTail {
  private offset = 0;
  private ino: number | null = null;
  private partial = '';
  private decoder = new StringDecoder('utf8');

  constructor(readonly file: string) {}

  private restart(): void {
    this.offset = 0;
    this.partial = '';
    this.decoder = new StringDecoder('utf8');
  }

  poll(): TailResult {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch {
      // not there (yet, or any more): a reader that had lines must drop them
      const reset = this.ino !== null;
      this.ino = null;
      this.restart();
      return { reset, lines: [] };
    }
    let reset = false;
    if (this.ino !== null && (st.ino !== this.ino || st.size < this.offset)) {
      reset = true;
      this.restart();
    }
    this.ino = st.ino;
    if (st.size <= this.offset) return { reset, lines: [] };
    const len = Math.min(st.size - this.offset, MAX_READ);
    const buf = Buffer.alloc(len);
    let got = 0;
    const fd = fs.openSync(this.file, 'r');
    try {
      while (got < len) {
        const n = fs.readSync(fd, buf, got, len - got, this.offset + got);
        if (n === 0) break;
        got += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    this.offset += got;
    const text = this.partial + this.decoder.write(buf.subarray(0, got));
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    return { reset, lines: lines.filter((l) => l.trim() !== '') };
  }
}
