import fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { UserError } from '../util/errors.js';
import { firstInvalidUtf8 } from './utf8.js';

/**
 * Is a file text of the kind we expect? Everything read as a dataset passes through here:
 * downloads (TinyStories) get the full story check before they are cached, local files the
 * checks that make sense for a user's own text (not binary, not an HTML page, valid UTF-8).
 */

export const EOT_TEXT = '<|endoftext|>';
const CHUNK_BYTES = 4 << 20;
/** How much of a file's start is looked at for binary content and markup. */
export const SNIFF_BYTES = 64 << 10;
/** A line that is only the story separator (spaces around it allowed). */
const SEPARATOR_LINE = /(?:^|\n)[ \t]*<\|endoftext\|>[ \t\r]*(?=\n|$)/;

/** Invalid UTF-8 in a file; `offset` is the byte offset of the first bad sequence. */
export class NotUtf8Error extends UserError {
  constructor(readonly file: string, readonly offset: number) {
    super(`${file} is not valid UTF-8 (byte offset ${offset})`);
    this.name = 'NotUtf8Error';
  }
}

/**
 * The file as decoded strings, each ending at a newline (except possibly the last), so
 * no line and no UTF-8 sequence is ever split between two chunks. Invalid UTF-8 is a
 * NotUtf8Error naming the file and the byte offset. A leading BOM is dropped.
 */
export function* textChunks(file: string): Generator<string> {
  const fd = fs.openSync(file, 'r');
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  try {
    const buf = Buffer.alloc(CHUNK_BYTES);
    let carry = Buffer.alloc(0);
    let pos = 0; // file offset of carry[0]
    let first = true;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      const eof = n === 0;
      let cut = eof ? data.length : data.lastIndexOf(10) + 1;
      if (!eof && cut === 0) {
        // no newline yet: keep reading, unless the line is huge (then cut at a UTF-8 boundary)
        if (data.length < 4 * CHUNK_BYTES) { carry = Buffer.from(data); continue; }
        cut = data.length;
        while (cut > 0 && (data[cut - 1]! & 0xc0) === 0x80) cut--;
        if (cut > 0 && data[cut - 1]! >= 0xc0) cut--;
      }
      const piece = data.subarray(0, cut);
      if (piece.length > 0) {
        let text: string;
        try {
          text = decoder.decode(piece);
        } catch {
          throw new NotUtf8Error(file, pos + Math.max(firstInvalidUtf8(piece), 0));
        }
        if (first && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
        yield text;
      }
      pos += cut;
      carry = Buffer.from(data.subarray(cut));
      if (eof) break;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The first `bytes` of a file (fewer when it is shorter). */
function readHead(file: string, bytes = SNIFF_BYTES): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, fs.readSync(fd, buf, 0, bytes, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** What makes bytes look binary: a NUL, or more than 5% control bytes. Null when they look like text. */
function binaryProblem(head: Uint8Array): string | null {
  let control = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head[i]!;
    if (c === 0) return `looks like a binary file (NUL byte at offset ${i}), not text`;
    if (c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12) control++;
  }
  if (control > 0.05 * head.length) return `looks like a binary file (${control} control bytes in the first ${head.length}), not text`;
  return null;
}

/** Rejects files that look binary: a NUL byte, or more than 5% control bytes, in the first 64 KB. */
export function checkNotBinary(file: string): void {
  const p = binaryProblem(readHead(file));
  if (p) throw new UserError(`${file} ${p}`);
}

/** A document that begins as a web page: `<!DOCTYPE html>` or `<html>` first (after blanks and comments). */
const HTML_START = /^(?:\s|<!--[\s\S]*?-->)*(<!doctype\s+html\b[^>\n]{0,80}>?|<html\b[^>\n]{0,80}>?)/i;
const XML_START = /^\s*(<\?xml\b)/i;
/** Elements that only a web page has, anywhere near its start. */
const PAGE_TAG = /<(html|head|body)[\s>]/i;
/** A line that starts with a tag or a comment (`<p>`, `</div>`, `<!--`, `<?php`); `<|endoftext|>` is not one. */
const TAG_LINE = /^\s*<\/?[A-Za-z!?][^<>]*>/;

/**
 * What makes the start of a file look like an HTML or XML page instead of prose, or null.
 * `strict` (downloads that must be TinyStories) also counts page elements anywhere in the
 * first 4 KB and the share of lines that are tags; a user's own text is refused only when
 * it begins as an HTML document, since prose may quote markup.
 */
export function markupProblem(head: string, strict: boolean): string | null {
  const text = head.charCodeAt(0) === 0xfeff ? head.slice(1) : head;
  const html = HTML_START.exec(text);
  if (html) return `is an HTML page (it starts with ${html[1]!.trim()}), not text`;
  if (!strict) return null;
  const xml = XML_START.exec(text);
  if (xml) return `is an XML document (it starts with ${xml[1]}), not text`;
  const tag = PAGE_TAG.exec(text.slice(0, 4096));
  if (tag) return `is an HTML page (it holds <${tag[1]!.toLowerCase()}>), not text`;
  const lines = text.split('\n').filter((l) => l.trim().length > 0);
  const tags = lines.filter((l) => TAG_LINE.test(l)).length;
  if (tags >= 3 && tags > 0.3 * lines.length) return `is markup, not text (${tags} of its first ${lines.length} lines are tags)`;
  return null;
}

/**
 * Refuses a local text file that is not text a model should learn from: binary content, or
 * an HTML page (a saved web page instead of its text). `.jsonl` files are JSON and skip the
 * page check. UTF-8 is checked while the file is read, with the byte offset of a bad sequence.
 */
export function checkLocalText(file: string): void {
  const head = readHead(file);
  const bin = binaryProblem(head);
  if (bin) throw new UserError(`${file} ${bin}`);
  if (file.toLowerCase().endsWith('.jsonl')) return;
  const page = markupProblem(head.toString('utf8'), false);
  if (page) throw new UserError(`${file} ${page}; give the text itself (or, to train on markup, put it in the "text" field of a .jsonl file)`);
}

/**
 * What is wrong with a file that must hold TinyStories-style text, or null when nothing is:
 * binary content (a NUL byte), markup (an HTML/XML page), invalid UTF-8, no `<|endoftext|>`
 * separator line, and (with `wholeStories`) a last story cut off, i.e. a last non-blank line
 * other than the separator. Reads the whole file once.
 */
export function storyFileProblem(file: string, o: { wholeStories: boolean }): string | null {
  const head = readHead(file);
  if (head.length === 0) return 'is empty';
  const nul = head.indexOf(0);
  if (nul >= 0) return `holds binary data (a NUL byte at offset ${nul}), not text`;
  const markup = markupProblem(head.toString('utf8'), true);
  if (markup) return markup;
  const bytes = byteProblem(file);
  if (bytes) return bytes;
  let sawSeparator = false;
  for (const text of textChunks(file)) if ((sawSeparator = SEPARATOR_LINE.test(text))) break;
  if (!sawSeparator) return `has no ${EOT_TEXT} line between stories, so it is not TinyStories text`;
  if (o.wholeStories && !endsWithWholeStory(file)) {
    const body = readTail(file, 4096).text.trimEnd();
    return `ends mid-story (its last line is not ${EOT_TEXT}, it ends with "${tail(body.slice(body.lastIndexOf('\n') + 1))}"): the file is truncated`;
  }
  return null;
}

/**
 * A NUL byte or invalid UTF-8 anywhere in the file, from its raw bytes (a 200 MB download is
 * checked in well under a second): the problem with its byte offset, or null.
 */
function byteProblem(file: string): string | null {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(CHUNK_BYTES);
    let carry = Buffer.alloc(0);
    let pos = 0; // file offset of carry[0]
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      const nul = data.indexOf(0);
      if (nul >= 0) return `holds binary data (a NUL byte at offset ${pos + nul}), not text`;
      // A sequence cut by the chunk end is carried over to the next chunk (at the end of the file it is invalid).
      let cut = data.length;
      for (let k = 1; n > 0 && k <= 3 && k <= data.length; k++) {
        const c = data[data.length - k]!;
        if (c >= 0xc0) { cut = data.length - k; break; }
        if (c < 0x80) break;
      }
      const piece = data.subarray(0, cut);
      if (!isUtf8(piece)) return `is not valid UTF-8 (byte offset ${pos + Math.max(firstInvalidUtf8(piece), 0)})`;
      pos += cut;
      carry = Buffer.from(data.subarray(cut));
      if (n === 0) return null;
    }
  } finally {
    fs.closeSync(fd);
  }
}

function tail(line: string): string {
  const t = line.length > 40 ? `...${line.slice(-40)}` : line;
  return t.replace(/[\r\t]/g, ' ');
}

/** The file's last `bytes` as text (a cut UTF-8 sequence at its start becomes U+FFFD, which is harmless here). */
function readTail(file: string, bytes: number): { text: string; start: number } {
  const size = fs.statSync(file).size;
  const start = Math.max(0, size - bytes);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(size - start);
    fs.readSync(fd, buf, 0, buf.length, start);
    return { text: buf.toString('utf8'), start };
  } finally {
    fs.closeSync(fd);
  }
}

/** True when the last non-blank line of the file is the separator: it ends with a whole story. */
export function endsWithWholeStory(file: string): boolean {
  const { text } = readTail(file, 4096);
  const body = text.trimEnd();
  return body.slice(body.lastIndexOf('\n') + 1).trim() === EOT_TEXT;
}

/**
 * Cheap look at a cached story file (its first and last bytes): binary, markup, no separator
 * near the start, or a cut-off end. For files an earlier version may have cached unchecked;
 * a fresh download gets the full storyFileProblem.
 */
export function quickStoryProblem(file: string): string | null {
  const head = readHead(file);
  if (head.length === 0) return 'is empty';
  if (head.indexOf(0) >= 0) return 'holds binary data, not text';
  const text = head.toString('utf8');
  const markup = markupProblem(text, true);
  if (markup) return markup;
  if (!SEPARATOR_LINE.test(text)) return `has no ${EOT_TEXT} line near its start`;
  if (!endsWithWholeStory(file)) return 'ends mid-story';
  return null;
}

/**
 * Truncates a story file just after its last separator line, dropping a partial last story.
 * Returns false (and leaves the file alone) when it holds no separator line at all.
 */
export function cutAfterLastStory(file: string): boolean {
  const size = fs.statSync(file).size;
  const win = 1 << 20;
  const fd = fs.openSync(file, 'r+');
  try {
    for (let end = size; end > 0;) {
      const start = Math.max(0, end - win);
      const buf = Buffer.alloc(end - start);
      fs.readSync(fd, buf, 0, buf.length, start);
      const cut = lastSeparatorEnd(buf, start === 0, end === size);
      if (cut >= 0) {
        fs.ftruncateSync(fd, start + cut);
        return true;
      }
      if (start === 0) break;
      end = start + EOT_TEXT.length + 64; // overlap, so a separator line across windows is found whole
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Offset just after the newline that ends the last whole separator line in buf, or -1.
 * A separator needs a newline before it (or the start of the file) and a newline (or the end
 * of the file) after it.
 */
function lastSeparatorEnd(buf: Buffer, atFileStart: boolean, atFileEnd: boolean): number {
  for (let at = buf.lastIndexOf(EOT_TEXT); at >= 0; at = at > 0 ? buf.lastIndexOf(EOT_TEXT, at - 1) : -1) {
    let s = at - 1;
    while (s >= 0 && (buf[s] === 0x20 || buf[s] === 0x09)) s--;
    if (s < 0 ? !atFileStart : buf[s] !== 0x0a) continue;
    let e = at + EOT_TEXT.length;
    while (e < buf.length && (buf[e] === 0x20 || buf[e] === 0x09 || buf[e] === 0x0d)) e++;
    if (e < buf.length && buf[e] === 0x0a) return e + 1;
    if (e === buf.length && atFileEnd) return e;
  }
  return -1;
}

/**
 * True when one file's bytes are a prefix of the other's (or both are equal): two downloads
 * that should hold different texts came back as one page.
 */
export function sameText(a: string, b: string): boolean {
  const size = Math.min(fs.statSync(a).size, fs.statSync(b).size);
  if (size === 0) return true;
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.alloc(Math.min(size, CHUNK_BYTES));
    const bb = Buffer.alloc(ba.length);
    for (let pos = 0; pos < size; pos += ba.length) {
      const n = Math.min(ba.length, size - pos);
      fs.readSync(fa, ba, 0, n, pos);
      fs.readSync(fb, bb, 0, n, pos);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}
