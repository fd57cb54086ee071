import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until this command lands; replaced by its owner.
export function registerBaselines(program: Command): void {
  program.command('baselines').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm baselines` is not built yet');
  });
}
