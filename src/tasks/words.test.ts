import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  contentVocabulary, countContentWords, formatWordsDocument, isContentWordShape, isWordsDocument, parseWordsDocument,
  promptsFromStories, selectWords, verifyStory, wilsonInterval, wordsPrompt,
} from './words.js';

const STORY = 'Tom had a red ball. He threw the ball to his dog. The dog was happy and ran in the park with Tom all day long.';

test('verifier: whole words, case-insensitive, every required word', () => {
  assert.equal(verifyStory(['dog', 'ball', 'happy'], STORY).ok, true);
  assert.deepEqual(verifyStory(['Dog', 'BALL'], STORY).missing, []);
  // "ball" inside "balloon" is not the word ball; "dogs" is not "dog"
  const v = verifyStory(['ball', 'dog'], 'The girl had a big balloon and two dogs. They played in the sun all day and had fun together in the big green park.');
  assert.equal(v.ok, false);
  assert.deepEqual(v.missing, ['ball', 'dog']);
  // punctuation around a word does not hide it
  assert.equal(verifyStory(['sun'], '"Sun!" she said. The sun was warm, and the birds sang in the trees while the children played on the grass.').ok, true);
});

test('verifier: the quality filters (4 in a row, trigram more than 3 times, too short)', () => {
  const base = 'the cat sat on a mat and looked at the bird in the tree near the house where the old man lived alone';
  assert.equal(verifyStory(['cat'], base).ok, true);
  const four = `${base} no no no no`;
  const v4 = verifyStory(['cat'], four);
  assert.equal(v4.ok, false);
  assert.match(v4.quality ?? '', /4 times in a row/);
  assert.equal(verifyStory(['cat'], `${base} no no no`).ok, true); // three in a row is allowed
  const tri = `${base} I am sad. I am sad. I am sad. I am sad.`;
  const vt = verifyStory(['cat'], tri);
  assert.equal(vt.ok, false);
  assert.match(vt.quality ?? '', /"i am sad" more than 3 times/);
  assert.equal(verifyStory(['cat'], `${base} I am sad. I am sad. I am sad.`).ok, true); // 3 times is allowed
  const short = verifyStory(['cat'], 'The cat sat.');
  assert.equal(short.ok, false);
  assert.match(short.quality ?? '', /only 3 words/);
  assert.equal(verifyStory(['cat'], 'The cat sat.', { minWords: 3 }).ok, true);
});

test('content words: no stop words, letters only, frequent enough; selection is deterministic, from the story, in story order', () => {
  assert.equal(isContentWordShape('dog'), true);
  assert.equal(isContentWordShape('the'), false);
  assert.equal(isContentWordShape('was'), false);
  assert.equal(isContentWordShape('ox'), false);
  const counts = countContentWords([STORY, STORY, 'A dog and a cat.']);
  assert.equal(counts.get('dog'), 5);
  assert.equal(counts.get('the'), undefined);
  const vocab = new Set(contentVocabulary(counts, 2));
  assert.ok(vocab.has('ball') && vocab.has('dog') && !vocab.has('cat'));
  const w = selectWords(STORY, vocab, 3);
  assert.ok(w);
  assert.equal(w.length, 3);
  assert.deepEqual(selectWords(STORY, vocab, 3), w);
  const order = w.map((x) => STORY.toLowerCase().search(new RegExp(`\\b${x}\\b`)));
  assert.deepEqual([...order].sort((a, b) => a - b), order);
  for (const x of w) assert.ok(vocab.has(x));
  assert.equal(verifyStory(w, STORY).missing.length, 0);
  assert.equal(selectWords('A cat.', vocab, 1), null);
  // another salt draws (for some story) another set
  const many = Array.from({ length: 20 }, (_, i) => selectWords(STORY, vocab, 3, `s${i}`)!.join());
  assert.ok(new Set(many).size > 1);
});

test('prompt and document format round-trip; a share of documents is formatted', () => {
  assert.equal(wordsPrompt(['dog', 'ball']), 'Words: dog, ball\nStory:');
  const doc = formatWordsDocument(['dog', 'ball'], ` ${STORY} `);
  assert.equal(doc, `Words: dog, ball\nStory: ${STORY}`);
  assert.deepEqual(parseWordsDocument(doc), { words: ['dog', 'ball'], story: STORY });
  assert.equal(parseWordsDocument(STORY), null);
  const docs = Array.from({ length: 2000 }, (_, i) => `story number ${i}`);
  const share = docs.filter((d) => isWordsDocument(d, 0.3)).length / docs.length;
  assert.ok(Math.abs(share - 0.3) < 0.05, `${share}`);
  assert.equal(docs.some((d) => isWordsDocument(d, 0)), false);
  const prompts = promptsFromStories(['A cat.', STORY, STORY], new Set(['dog', 'ball', 'park', 'happy']), 2, 1);
  assert.equal(prompts.length, 1);
  assert.equal(prompts[0]!.story, STORY);
});

test('Wilson interval: known values, inside [0, 1], contains the rate', () => {
  const a = wilsonInterval(10, 100);
  assert.ok(Math.abs(a.low - 0.0552) < 5e-4 && Math.abs(a.high - 0.1744) < 5e-4, JSON.stringify(a));
  const z = wilsonInterval(0, 50);
  assert.equal(z.low, 0);
  assert.ok(Math.abs(z.high - 0.0713) < 5e-4, JSON.stringify(z));
  const f = wilsonInterval(50, 50);
  assert.ok(f.high === 1 && f.low < 1);
});
