import { Command, CommanderError } from 'commander';
import { isUserError } from '../util/errors.js';
import { registerDoctor } from './doctor.js';
import { registerBench } from './bench.js';
import { registerTokenizer } from './tokenizer.js';
import { registerPrepare } from './prepare.js';
import { registerBaselines } from './baselines.js';
import { registerTrain } from './train.js';
import { registerSample } from './sample.js';
import { registerEval } from './eval.js';
import { registerStar } from './star.js';
import { registerSpin } from './spin.js';
import { registerResearch } from './research.js';
import { registerExport } from './export.js';
import { registerImport } from './import.js';
import { registerPlot } from './plot.js';
import { registerDashboard } from './dashboard.js';
import { registerWeb } from './web.js';
import { registerStatus } from './status.js';

// The CLI parses and prints; every command's work lives in the layers below.

// `pocketlm sample ... | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const program = new Command();
program
  .name('pocketlm')
  .description('Train small language models from scratch on a CPU')
  .showHelpAfterError('(run with --help for usage)')
  // options belong to the command they follow (research and its worker/status both take --storage)
  .enablePositionalOptions()
  .exitOverride();

registerTrain(program);
registerSample(program);
registerEval(program);
registerStar(program);
registerSpin(program);
registerResearch(program);
registerExport(program);
registerImport(program);
registerPlot(program);
registerDashboard(program);
registerWeb(program);
registerStatus(program);
registerPrepare(program);
registerBaselines(program);
registerTokenizer(program);
registerBench(program);
registerDoctor(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // commander has already printed its message (or help); keep its exit code.
    process.exit(e.exitCode);
  }
  if (isUserError(e)) {
    console.error(`pocketlm: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
