import type { Command } from 'commander';
import { startDashboard } from '../dashboard/server.js';
import { intFlag } from './flags.js';

const collect = (v: string, acc: string[]): string[] => [...acc, v];

/** The folders listed when --runs is not given: where `train` and `research` put their folders by default. */
export const DEFAULT_ROOTS = ['runs', 'research'];

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description('a local web page that follows runs and research studies live (read-only)')
    .option('--runs <dir>', 'a folder of run or study folders, or one run (repeatable; default runs/ and research/)', collect, [])
    .option('--port <n>', 'port (0 picks a free one)', '8484')
    .option('--host <address>', 'address to listen on (anything but 127.0.0.1 lets others read your runs)', '127.0.0.1')
    .action(async (f: { runs: string[]; port: string; host: string }) => {
      const d = await startDashboard({ roots: f.runs.length ? f.runs : DEFAULT_ROOTS, host: f.host, port: intFlag('--port', f.port, 0, 65535) });
      if (d.warning) console.error(d.warning);
      console.log(`dashboard: ${d.url} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        const stop = () => { void d.close().then(resolve); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
