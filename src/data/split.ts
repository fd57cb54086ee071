import { createHash } from 'node:crypto';

/**
 * Train/validation split by document content: a hash of the whitespace-normalised text
 * decides, so the split is deterministic, independent of file order, and two copies of
 * one document always land on the same side (validation never overlaps train).
 */

/** Default share of documents sent to validation when no validation file is given. */
export const DEFAULT_VAL_FRACTION = 0.02;

/** Hex sha1 of the document with runs of whitespace collapsed (identity for dedup). */
export function docKey(doc: string): string {
  return createHash('sha1').update(doc.replace(/\s+/g, ' ').trim()).digest('hex');
}

/** The key as a number in [0, 1): its first 32 bits. */
export function keyFraction(key: string): number {
  return parseInt(key.slice(0, 8), 16) / 0x100000000;
}

export function isValKey(key: string, valFraction: number): boolean {
  return keyFraction(key) < valFraction;
}
