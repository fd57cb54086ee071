/**
 * Errors caused by the user's input (a missing file, a bad config key, a corrupt
 * checkpoint...). The CLI prints only the message, on one line, and exits non-zero;
 * any other exception is a bug in pocketlm and keeps its stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
