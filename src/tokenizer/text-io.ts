// The file-facing helpers behind `pocketlm tokenizer ...`: reading training documents and
// turning text of ids into arrays and back. No printing here.

import fs from 'node:fs';
import { UserError } from '../util/errors.js';
import { firstInvalidUtf8 } from '../data/utf8.js';
import { END_OF_TEXT } from './types.js';

/**
 * Reads a UTF-8 text file, with a one-line UserError naming it when it cannot be read or is not
 * valid UTF-8 (decoding would silently turn bad bytes into U+FFFD and train on them).
 */
export function readTextFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`file not found: ${file}`);
    if (code === 'EISDIR') throw new UserError(`${file} is a folder, not a text file`);
    throw new UserError(`cannot read ${file} (${code ?? String(e)})`);
  }
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) throw new UserError(`${file} is not valid UTF-8 at byte ${bad} (0x${bytes[bad]!.toString(16).padStart(2, '0')})`);
  return bytes.toString('utf8');
}

/**
 * Documents of a text: the stretches between `<|endoftext|>` separators, each without the line
 * break right before and after the separator; empty documents are dropped.
 */
export function splitDocuments(text: string, separator = END_OF_TEXT): string[] {
  const docs: string[] = [];
  for (let part of text.split(separator)) {
    if (part.startsWith('\r\n')) part = part.slice(2);
    else if (part.startsWith('\n')) part = part.slice(1);
    if (part.endsWith('\r\n')) part = part.slice(0, -2);
    else if (part.endsWith('\n')) part = part.slice(0, -1);
    if (part.length > 0) docs.push(part);
  }
  return docs;
}

/** All documents of some files, in order, and the number of characters read. */
export function readDocuments(files: readonly string[]): { docs: string[]; chars: number } {
  if (files.length === 0) throw new UserError('no training files given (--data PATH...)');
  const docs: string[] = [];
  let chars = 0;
  for (const f of files) {
    const text = readTextFile(f);
    chars += text.length;
    for (const d of splitDocuments(text)) docs.push(d);
  }
  return { docs, chars };
}

/**
 * Ids written as text: a JSON array (one sequence), or whitespace-separated ids with one sequence
 * per line. `source` names the input in errors.
 */
export function parseIdText(text: string, source: string): { lines: number[][]; json: boolean } {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(trimmed);
    } catch (e) {
      throw new UserError(`${source}: not a valid JSON array of ids (${(e as Error).message})`);
    }
    if (!Array.isArray(arr)) throw new UserError(`${source}: not a JSON array of ids`);
    arr.forEach((x, i) => {
      if (!isId(x)) throw new UserError(`${source}: element ${i} (${JSON.stringify(x)}) is not a token id`);
    });
    return { lines: [arr as number[]], json: true };
  }
  const rows = text.split('\n');
  if (rows.length > 1 && rows[rows.length - 1] === '') rows.pop();
  const lines = rows.map((row, li) => row.split(/\s+/).filter((w) => w !== '').map((w) => {
    const n = /^\d+$/.test(w) ? Number(w) : NaN;
    if (!isId(n)) throw new UserError(`${source} line ${li + 1}: ${JSON.stringify(w)} is not a token id`);
    return n;
  }));
  return { lines, json: false };
}

function isId(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** Lines of a text for per-line encoding: split at '\n' (a final line break ends the last line). */
export function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
