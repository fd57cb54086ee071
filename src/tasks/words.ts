import { docKey, keyFraction } from '../data/split.js';

/**
 * The words task (TinyStories-Instruct style): a prompt lists required words,
 *   `Words: dog, ball, happy\nStory:`
 * and the model writes a story after it. Success is checkable: the story uses every required word
 * (whole words, case-insensitive) and passes quality filters (no word repeated 4 times in a row,
 * no trigram more than 3 times, at least `minWords` words).
 *
 * The required words are content words of a real story: words that occur in it, are not stop
 * words, are letters only (3+ of them) and occur at least `minCount` times in the training split
 * (so a model can have learned them). Which ones are picked is a pure function of the story text
 * and a salt, so training documents, the STaR pool and held-out prompts are reproducible.
 */

export const WORDS_PREFIX = 'Words: ';
export const STORY_MARKER = '\nStory:';

/** How many words a prompt asks for, and the filters of a successful story. */
export interface WordsTaskOptions {
  /** Required words per prompt (default 3). */
  count: number;
  /** A content word must occur this many times in the training split (default 20). */
  minCount: number;
  /** A successful story has at least this many words (default 20). */
  minWords: number;
}

export const DEFAULT_WORDS_OPTIONS: WordsTaskOptions = { count: 3, minCount: 20, minWords: 20 };

/** Common English function words and very generic story words that make no task. */
const STOP_WORDS = new Set(
  ('a about above after again against all also am an and any are as at be because been before being below ' +
    'between both but by can could did do does doing down during each few for from further had has have having he ' +
    'her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not ' +
    'now of off on once only or other our ours ourselves out over own same she should so some such than that the ' +
    'their theirs them themselves then there these they this those through to too under until up very was we were ' +
    'what when where which while who whom why will with would you your yours yourself yourselves one two day time ' +
    'said says say went go get got let lets like very much many upon also back away again always every ever ' +
    'named name called came come comes see saw look looked looking make made want wanted know knew think thought ' +
    'tell told asked ask yes okay dont didnt cant wasnt isnt im its thats there theyre youre could would should ' +
    'once soon still too even then than little big') .split(/\s+/),
);

/** The words of a text: lowercased runs of letters (an apostrophe inside a word splits it). */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+/g) ?? [];
}

/** Whether `w` may be a required word at all (before the frequency rule). */
export function isContentWordShape(w: string): boolean {
  return w.length >= 3 && /^[a-z]+$/.test(w) && !STOP_WORDS.has(w);
}

/** Counts of content-shaped words over documents (the training split). */
export function countContentWords(docs: Iterable<string>, counts: Map<string, number> = new Map()): Map<string, number> {
  for (const d of docs) addContentWordCounts(d, counts);
  return counts;
}

export function addContentWordCounts(doc: string, counts: Map<string, number>): void {
  for (const w of wordsOf(doc)) if (isContentWordShape(w)) counts.set(w, (counts.get(w) ?? 0) + 1);
}

/** The content-word vocabulary: shaped words seen at least minCount times, sorted. */
export function contentVocabulary(counts: Map<string, number>, minCount: number): string[] {
  return [...counts].filter(([, n]) => n >= minCount).map(([w]) => w).sort();
}

/** A small deterministic generator seeded from a hex key (sha1 of the story and a salt). */
function rngFromKey(key: string): () => number {
  let s = parseInt(key.slice(0, 8), 16) >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The required words for a story: `count` distinct content words of the story (in the
 * vocabulary), drawn by a generator seeded from the story's text and `salt`, in the order they
 * first occur in the story. Null when the story has fewer than `count` of them.
 */
export function selectWords(story: string, vocabulary: ReadonlySet<string>, count: number, salt = ''): string[] | null {
  const seen = new Set<string>();
  const candidates: string[] = [];
  for (const w of wordsOf(story)) {
    if (seen.has(w)) continue;
    seen.add(w);
    if (vocabulary.has(w)) candidates.push(w);
  }
  if (candidates.length < count) return null;
  const rng = rngFromKey(docKey(`${salt}\n${story}`));
  // partial Fisher-Yates: the first `count` of a random permutation
  const pool = [...candidates];
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(rng() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  const chosen = new Set(pool.slice(0, count));
  return candidates.filter((w) => chosen.has(w));
}

/** The prompt the model continues: `Words: a, b, c\nStory:` (the story follows after a space). */
export function wordsPrompt(words: readonly string[]): string {
  return `${WORDS_PREFIX}${words.join(', ')}${STORY_MARKER}`;
}

/** A training document in the task's format: the prompt, a space, the story. */
export function formatWordsDocument(words: readonly string[], story: string): string {
  return `${wordsPrompt(words)} ${story.trim()}`;
}

/** Parses a document made by formatWordsDocument: its words and story, or null for a plain story. */
export function parseWordsDocument(doc: string): { words: string[]; story: string } | null {
  if (!doc.startsWith(WORDS_PREFIX)) return null;
  const at = doc.indexOf(STORY_MARKER);
  if (at < 0) return null;
  const words = doc.slice(WORDS_PREFIX.length, at).split(',').map((w) => w.trim()).filter((w) => w.length > 0);
  return { words, story: doc.slice(at + STORY_MARKER.length).trim() };
}

/**
 * Whether a training document is formatted as a words task: a share `fraction` of the documents,
 * chosen by a hash of the text (salted, so independent of the train/validation split).
 */
export function isWordsDocument(doc: string, fraction: number): boolean {
  if (fraction <= 0) return false;
  return keyFraction(docKey(`words\n${doc}`)) < fraction;
}

export interface Verdict {
  ok: boolean;
  /** The required words the story does not use. */
  missing: string[];
  /** The failed quality filter, or null. */
  quality: string | null;
  words: number;
}

/**
 * Checks a generated story against its required words and the quality filters:
 * - every required word occurs as a whole word (case-insensitive);
 * - no word four times in a row;
 * - no trigram (three consecutive words) more than 3 times;
 * - at least minWords words.
 */
export function verifyStory(required: readonly string[], story: string, opts: Pick<WordsTaskOptions, 'minWords'> = DEFAULT_WORDS_OPTIONS): Verdict {
  const words = wordsOf(story);
  const present = new Set(words);
  const missing = required.filter((w) => !present.has(w.toLowerCase()));
  return { ok: missing.length === 0 && qualityProblem(words, opts.minWords) === null, missing, quality: qualityProblem(words, opts.minWords), words: words.length };
}

function qualityProblem(words: readonly string[], minWords: number): string | null {
  if (words.length < minWords) return `only ${words.length} words (at least ${minWords})`;
  let run = 1;
  for (let i = 1; i < words.length; i++) {
    run = words[i] === words[i - 1] ? run + 1 : 1;
    if (run >= 4) return `"${words[i]}" 4 times in a row`;
  }
  const trigrams = new Map<string, number>();
  for (let i = 0; i + 2 < words.length; i++) {
    const t = `${words[i]} ${words[i + 1]} ${words[i + 2]}`;
    const n = (trigrams.get(t) ?? 0) + 1;
    trigrams.set(t, n);
    if (n > 3) return `"${t}" more than 3 times`;
  }
  return null;
}

/** One prompt of the task: the words and the story they came from. */
export interface WordsPrompt {
  words: string[];
  /** The human story the words were taken from (the reference continuation). */
  story: string;
}

/** Prompts from stories (in order, skipping stories with too few content words), at most `limit`. */
export function promptsFromStories(stories: Iterable<string>, vocabulary: ReadonlySet<string>, count: number, limit: number, salt = ''): WordsPrompt[] {
  const out: WordsPrompt[] = [];
  for (const s of stories) {
    if (out.length >= limit) break;
    const story = s.trim();
    const words = selectWords(story, vocabulary, count, salt);
    if (words) out.push({ words, story });
  }
  return out;
}

/**
 * Wilson score interval for k successes out of n at 95% (z = 1.96): better than the normal
 * approximation near 0 and 1, where these success rates live.
 */
export function wilsonInterval(k: number, n: number, z = 1.959963984540054): { low: number; high: number } {
  if (n === 0) return { low: 0, high: 1 };
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // the bounds are exactly 0 / 1 at k = 0 / n (rounding would leave 1e-17)
  return { low: k === 0 ? 0 : Math.max(0, centre - half), high: k === n ? 1 : Math.min(1, centre + half) };
}
