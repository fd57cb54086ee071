// Builds the browser app (src/web/app) into dist/web-app/: a static site (index.html, the page's,
// the trainer's and the pool workers' bundles, uPlot, the dashboard's chart helpers, the presets
// as JSON) that `pocketlm web` serves with the cross-origin isolation headers. Run by
// `npm run build` after the TypeScript build (presets.json is made with dist/train/config.js).
//
// One code base: the bundles import the same src/ modules as Node. Three rules make them run
// in a browser:
//  - `./x.js` resolves to `x.web.ts` when that file exists (the host seams: platform.web.ts);
//  - `pocketlm:wasm-builds` inlines dist/wasm/kernels-{relaxed,simd}.wasm;
//  - `node:*` modules become stubs that throw when used, so a module whose Node-only functions
//    the browser never calls (checkpoint.ts writes files; its neighbours only compute) can be
//    imported; every call the page makes is covered by the browser test (src/web/web.test.ts).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'web-app');
const app = path.join(root, 'src', 'web', 'app');

// Types first: esbuild strips them unchecked (src/web/app has its own tsconfig, with the DOM).
const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(app, 'tsconfig.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const webSeams = {
  name: 'pocketlm-web',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => {
      const web = path.resolve(args.resolveDir, args.path.replace(/\.js$/, '.web.ts'));
      return fs.existsSync(web) ? { path: web } : undefined;
    });
    build.onResolve({ filter: /^pocketlm:wasm-builds$/ }, () => ({ path: 'wasm-builds', namespace: 'pocketlm' }));
    build.onLoad({ filter: /.*/, namespace: 'pocketlm' }, () => {
      const b64 = (build) => fs.readFileSync(path.join(root, 'dist', 'wasm', `kernels-${build}.wasm`)).toString('base64');
      const decode = 'const d = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));';
      return { contents: `${decode}\nexport const relaxed = d(${JSON.stringify(b64('relaxed'))});\nexport const simd = d(${JSON.stringify(b64('simd'))});\n`, loader: 'js' };
    });
    build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'node-stub' }));
    build.onLoad({ filter: /.*/, namespace: 'node-stub' }, (args) => ({
      loader: 'js',
      contents: `module.exports = new Proxy({}, { get(_, k) {
        if (typeof k === 'symbol' || k === '__esModule' || k === 'default' || k === 'then') return undefined;
        throw new Error(${JSON.stringify(args.path)} + '.' + String(k) + ' is not available in a browser');
      } });`,
    }));
  },
};

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: { main: path.join(app, 'main.ts'), 'train-worker': path.join(app, 'train-worker.ts'), 'pool-worker': path.join(app, 'pool-worker.ts') },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [webSeams],
});

for (const f of ['index.html', 'app.css']) fs.copyFileSync(path.join(app, f), path.join(out, f));
const require = createRequire(import.meta.url);
const uplot = path.join(path.dirname(require.resolve('uplot/package.json')), 'dist');
fs.copyFileSync(path.join(uplot, 'uPlot.iife.min.js'), path.join(out, 'uPlot.iife.min.js'));
fs.copyFileSync(path.join(uplot, 'uPlot.min.css'), path.join(out, 'uPlot.min.css'));
fs.copyFileSync(path.join(root, 'src', 'dashboard', 'assets', 'charts.js'), path.join(out, 'charts.js'));

// The presets as the page needs them: validated configs (the page has no TOML parser or schema).
const { listPresets, loadConfig } = await import(pathToFileURL(path.join(root, 'dist', 'train', 'config.js')).href);
const presets = Object.fromEntries(listPresets().map((p) => [p, loadConfig({ preset: p })]));
fs.writeFileSync(path.join(out, 'presets.json'), JSON.stringify(presets) + '\n');
