import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until this command lands; replaced by its owner.
export function registerPrepare(program: Command): void {
  program.command('prepare').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm prepare` is not built yet');
  });
}
