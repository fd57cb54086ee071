import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until this command lands; replaced by its owner.
export function registerSample(program: Command): void {
  program.command('sample').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm sample` is not built yet');
  });
}
