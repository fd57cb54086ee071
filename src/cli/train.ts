import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until this command lands; replaced by its owner.
export function registerTrain(program: Command): void {
  program.command('train').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm train` is not built yet');
  });
}
