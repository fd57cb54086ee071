import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until this command lands; replaced by its owner.
export function registerDoctor(program: Command): void {
  program.command('doctor').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm doctor` is not built yet');
  });
}
