import { IGNORE_ID } from '../model/gpt.js';

/** A fine-tuning sequence: the prompt (not scored) and its completion (scored). */
export interface Example {
  /** Starts with <|endoftext|>, as every training document did. */
  prompt: readonly number[];
  /** Ends with <|endoftext|> when the story ended. */
  completion: readonly number[];
}

/**
 * Writes example e into row r of inputs/targets [rows, T]: inputs are the first T tokens of
 * prompt ++ completion (then <|endoftext|> as padding), targets the next token where it is a
 * completion token and IGNORE_ID elsewhere (the prompt and the padding). A completion longer
 * than the row is cut.
 */
export function writeRow(e: Example, T: number, r: number, inputs: Int32Array, targets: Int32Array, padId: number): void {
  const seq = [...e.prompt, ...e.completion];
  const P = e.prompt.length;
  if (P < 1 || P >= T) throw new Error(`writeRow: a prompt of ${P} tokens does not fit rows of ${T}`);
  for (let t = 0; t < T; t++) {
    inputs[r * T + t] = t < seq.length ? seq[t]! : padId;
    const next = t + 1;
    targets[r * T + t] = next >= P && next < seq.length ? seq[next]! : IGNORE_ID;
  }
}
