import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { Journal, journalPath, readJournal } from './journal.js';
import type { JournalEvent } from './types.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-journal-'));
}

const header = { type: 'study', time: 't', version: 1, base_config: '', base_name: 'x' } as unknown as JournalEvent;
const end = (reason: string): JournalEvent => ({ type: 'end', time: 't', reason });

test('journal: events appended one per line come back in order; a new journal refuses an existing file', () => {
  const dir = tmp();
  try {
    const j = Journal.open(dir, true);
    j.append(header);
    j.append(end('a'));
    j.close();
    assert.deepEqual(readJournal(dir), { events: [header, end('a')], torn: false });
    assert.throws(() => Journal.open(dir, true), /already exists|EEXIST/);
    const j2 = Journal.open(dir, false);
    j2.append(end('b'));
    j2.close();
    assert.deepEqual(readJournal(dir).events.map((e) => e.type === 'end' && e.reason), [false, 'a', 'b']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('journal: a torn last line (a kill mid-append) is left out, and cut when the journal is opened to go on', () => {
  const dir = tmp();
  try {
    const j = Journal.open(dir, true);
    j.append(header);
    j.append(end('a'));
    j.close();
    fs.appendFileSync(journalPath(dir), '{"type":"end","ti');
    assert.deepEqual(readJournal(dir), { events: [header, end('a')], torn: true });
    const j2 = Journal.open(dir, false);
    j2.append(end('b'));
    j2.close();
    assert.deepEqual(readJournal(dir), { events: [header, end('a'), end('b')], torn: false });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('journal: a corrupt line is refused with its line number, and opening the journal changes nothing', () => {
  const dir = tmp();
  try {
    const file = journalPath(dir);
    fs.writeFileSync(file, JSON.stringify(header) + '\n{oops\n' + JSON.stringify(end('a')) + '\n');
    const before = fs.readFileSync(file);
    assert.throws(() => readJournal(dir), (e: unknown) => e instanceof UserError && /journal\.jsonl line 2: not valid JSON/.test(e.message) && !e.message.includes('\n'));
    assert.throws(() => Journal.open(dir, false), UserError);
    assert.deepEqual(fs.readFileSync(file), before);
    fs.writeFileSync(file, JSON.stringify(header) + '\n{"type":"party"}\n');
    assert.throws(() => readJournal(dir), /line 2: not a study event/);
    fs.writeFileSync(file, JSON.stringify(end('a')) + '\n');
    assert.throws(() => readJournal(dir), /line 1: the journal must start with the study event/);
    fs.writeFileSync(file, JSON.stringify(header) + '\n{"type":"trial_end","id":"x"}\n');
    assert.throws(() => readJournal(dir), /line 2: a trial_end event without an integer "id"/);
    fs.rmSync(file);
    assert.throws(() => readJournal(dir), /holds no study/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
