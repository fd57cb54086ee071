import type { Command } from 'commander';
import { UserError } from '../util/errors.js';

// Placeholder until the benchmarks land.
export function registerBench(program: Command): void {
  program.command('bench').description('(not built yet)').allowUnknownOption().action(() => {
    throw new UserError('`pocketlm bench` is not built yet');
  });
}
