import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until this command lands; replaced by its owner.
export function registerEval(program: Command): void {
  program.command('eval').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm eval` is not built yet');
  });
}
