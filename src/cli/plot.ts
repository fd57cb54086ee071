import type { Command } from 'commander';
import { plotSvg, writePlot } from '../plot/plot-file.js';
import { METRICS, X_AXES } from '../plot/run-chart.js';
import { choiceFlag, intFlag } from './flags.js';

export function registerPlot(program: Command): void {
  program
    .command('plot')
    .description('draw run curves (with the n-gram baselines), or a study\'s progress chart, as SVG or PNG')
    .argument('<dirs...>', 'run folders to overlay, or one study folder')
    .requiredOption('--out <file>', 'FILE.svg or FILE.png')
    .option('--metric <name>', `${METRICS.join(' | ')}`, 'val_bpb')
    .option('--x <axis>', `${X_AXES.join(' | ')}`, 'step')
    .option('--width <px>', 'image width', '900')
    .option('--height <px>', 'image height', '480')
    .action((dirs: string[], f: { out: string; metric: string; x: string; width: string; height: string }) => {
      const svg = plotSvg({
        targets: dirs,
        metric: choiceFlag('--metric', f.metric, METRICS),
        x: choiceFlag('--x', f.x, X_AXES),
        width: intFlag('--width', f.width, 200, 8000),
        height: intFlag('--height', f.height, 150, 8000),
      });
      const bytes = writePlot(f.out, svg);
      console.log(`wrote ${f.out} (${(bytes / 1024).toFixed(1)} KB)`);
    });
}
