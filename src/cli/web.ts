import type { Command } from 'commander';
import { startWebServer } from '../web/server.js';
import { intFlag } from './flags.js';

export function registerWeb(program: Command): void {
  program
    .command('web')
    .description('a web page that trains a model in the browser tab (Web Workers over shared memory; nothing leaves the browser)')
    .option('--port <n>', 'port (0 picks a free one)', '8485')
    .option('--host <address>', 'address to listen on (127.0.0.1: this machine only; from another device over plain http the page runs on one thread: browsers share memory between threads only on localhost or https)', '127.0.0.1')
    .action(async (f: { port: string; host: string }) => {
      const w = await startWebServer({ host: f.host, port: intFlag('--port', f.port, 0, 65535) });
      if (w.warning) console.error(w.warning);
      console.log(`pocketlm web: ${w.url} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        const stop = () => { void w.close().then(resolve); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
