import { UserError } from '../util/errors.js';

// Checks of command-line flag values. Each refuses a bad value in one line naming the flag,
// what it must be and what was given, so that no value is silently replaced by another
// (a backend name the kernels do not know, a negative thread count).

/** The most kernel or tokenizer threads a flag accepts (as train.threads in the config). */
export const MAX_THREADS = 256;

function range(min: number, max: number): string {
  return max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
}

/** A whole number in [min, max], written in decimal digits ("1e3", "0x10", "2.0" and "" are refused). */
export function intFlag(flag: string, v: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const t = v.trim();
  const n = /^[-+]?\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UserError(`${flag} must be a whole number ${range(min, max)}, got "${v}"`);
  return n;
}

/** A finite number for which `ok` holds; `what` says which ("a number >= 0"). */
export function numberFlag(flag: string, v: string, ok: (n: number) => boolean, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new UserError(`${flag} must be ${what}, got "${v}"`);
  return n;
}

/** One of `choices`, exactly. */
export function choiceFlag<T extends string>(flag: string, v: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(v)) throw new UserError(`${flag} must be one of ${choices.join(', ')}, got "${v}"`);
  return v as T;
}

/** An optional flag: undefined when not given, else `parse` of its value. */
export function optional<T>(v: string | undefined, parse: (v: string) => T): T | undefined {
  return v === undefined ? undefined : parse(v);
}
