import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until this command lands; replaced by its owner.
export function registerTokenizer(program: Command): void {
  program.command('tokenizer').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm tokenizer` is not built yet');
  });
}
