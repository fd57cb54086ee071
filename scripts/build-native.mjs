// Builds the optional native BLAS addon (native/ -> native/build/Release/pocketlm_blas.node).
//
// Run by `npm install` (the `prepare` script) after the TypeScript build. It must never fail
// the install: on any problem it prints exactly one line saying why and how to get the
// faster path, and exits 0; pocketlm then uses the wasm backend. POCKETLM_NO_NATIVE=1 skips it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = path.join(root, 'native');
const addonPath = path.join(nativeDir, 'build', 'Release', 'pocketlm_blas.node');
const HINT = 'apt-get install libopenblas-dev (or brew install openblas) for ~2x faster matrix products';

function notice(reason, hint = true) {
  console.log(`pocketlm: native BLAS addon not built (${reason}${hint ? `; ${HINT}` : ''}); using wasm`);
  process.exit(0);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { ok: r.status === 0 && !r.error, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/** Splits a pkg-config output line into -I/-L/-l flags. */
function splitFlags(s) {
  return s.trim().split(/\s+/).filter(Boolean);
}

/** The directories a cblas.h may be in, most specific first. */
function headerCandidates() {
  const dirs = [];
  for (const base of ['/usr/include', '/usr/local/include']) {
    if (!existsSync(base)) continue;
    dirs.push(base, path.join(base, 'openblas'));
    for (const sub of safeReaddir(base)) {
      // Debian/Ubuntu multiarch: /usr/include/x86_64-linux-gnu/{,openblas-pthread/}cblas.h
      if (sub.endsWith('-linux-gnu')) dirs.push(path.join(base, sub, 'openblas-pthread'), path.join(base, sub));
    }
  }
  dirs.push('/opt/homebrew/opt/openblas/include', '/usr/local/opt/openblas/include', '/opt/OpenBLAS/include');
  return dirs.filter((d) => existsSync(path.join(d, 'cblas.h')));
}

function safeReaddir(d) {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

/**
 * Finds the CBLAS: pkg-config first (openblas, then cblas), then known header locations
 * with -lopenblas (OpenBLAS exports the CBLAS symbols itself) or -lcblas.
 */
function detectCblas() {
  for (const pkg of ['openblas', 'cblas']) {
    const r = run('pkg-config', ['--cflags', '--libs', pkg]);
    if (!r.ok) continue;
    const flags = splitFlags(r.out);
    const incs = flags.filter((f) => f.startsWith('-I')).map((f) => f.slice(2));
    const hasHeader = [...incs, ...headerCandidates()].some((d) => existsSync(path.join(d, 'cblas.h')));
    if (!hasHeader) continue;
    const cflags = flags.filter((f) => f.startsWith('-I'));
    if (!cflags.length) cflags.push(`-I${headerCandidates()[0]}`);
    const libs = flags.filter((f) => !f.startsWith('-I'));
    return { how: `pkg-config ${pkg}`, cflags, libs, rpath: rpathFor(libs) };
  }
  const headers = headerCandidates();
  if (!headers.length) return { error: 'no cblas.h found' };
  const inc = headers[0];
  // Homebrew-style prefixes keep their libs next to include/.
  const libDir = path.join(path.dirname(inc), 'lib');
  const L = existsSync(libDir) && !libDir.startsWith('/usr/lib') ? [`-L${libDir}`] : [];
  const lib = ['openblas', 'cblas', 'blas'].find((name) => libraryExists(name, L.map((f) => f.slice(2))));
  if (!lib) return { error: `found ${inc}/cblas.h but no libopenblas, libcblas or libblas` };
  const libs = [...L, `-l${lib}`];
  return { how: `${inc}/cblas.h with -l${lib}`, cflags: [`-I${inc}`], libs, rpath: rpathFor(libs) };
}

/** Whether lib<name>.so/.dylib is in one of the usual library directories (or `extra`). */
function libraryExists(name, extra) {
  const dirs = [...extra, '/usr/lib', '/usr/lib64', '/usr/local/lib', '/opt/homebrew/lib'];
  for (const sub of safeReaddir('/usr/lib')) if (sub.endsWith('-linux-gnu')) dirs.push(path.join('/usr/lib', sub));
  return dirs.some((d) => [`lib${name}.so`, `lib${name}.dylib`].some((f) => existsSync(path.join(d, f))));
}

/** Libraries outside the system paths need an rpath so the addon finds them at run time. */
function rpathFor(libs) {
  const dirs = libs.filter((f) => f.startsWith('-L')).map((f) => f.slice(2));
  const custom = dirs.filter((d) => !/^\/(usr\/)?lib(64)?(\/|$)/.test(d));
  return custom[0] ?? '';
}

/** node-gyp ships inside npm; npm also tells lifecycle scripts where it is. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c && existsSync(c)) ?? null;
}

/** Node's own headers next to the binary (distro packages, official tarballs) avoid a download. */
function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

/** The last meaningful line of compiler output, for the one-line notice. */
function lastError(out) {
  const lines = out.split('\n').map((l) => l.trim()).filter(Boolean);
  const err = lines.find((l) => /error[:\s]/i.test(l) && !l.startsWith('gyp ERR!')) ?? lines.find((l) => l.startsWith('gyp ERR!'));
  return (err ?? 'unknown error').slice(0, 160);
}

function main() {
  if (process.env.POCKETLM_NO_NATIVE === '1') {
    console.log('pocketlm: native BLAS addon skipped (POCKETLM_NO_NATIVE=1); using wasm');
    return;
  }
  if (process.platform === 'win32') notice('Windows builds are not supported');
  const blas = detectCblas();
  if (blas.error) notice(blas.error);
  const gyp = findNodeGyp();
  if (!gyp) notice('node-gyp not found (it ships with npm)');

  const args = [gyp, 'rebuild', '--release'];
  const nodedir = findNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  args.push('--', `-Dcblas_cflags=${blas.cflags.join(' ')}`, `-Dcblas_libs=${blas.libs.join(' ')}`, `-Dcblas_rpath=${blas.rpath}`);
  const r = run(process.execPath, args, { cwd: nativeDir });
  if (!r.ok) notice(r.error ? `node-gyp did not run: ${r.error.message}` : `compile failed: ${lastError(r.out)}`, false);

  // Prove it loads and multiplies in a fresh process (a missing runtime library shows here),
  // through the package's own loader when the TypeScript build is there (it picks the
  // OpenBLAS core type, which the printed library string shows).
  const loader = path.join(root, 'dist', 'kernels', 'native', 'load.js');
  const load = existsSync(loader)
    ? `const r=(await import(${JSON.stringify(pathToFileURL(loader).href)})).loadNativeBlas();if(!r.ok)throw new Error(r.reason);const a=r.addon;`
    : `const a=(await import('node:module')).createRequire(import.meta.url)(${JSON.stringify(addonPath)});`;
  const probe = `${load}const m=new WebAssembly.Memory({initial:1,maximum:2,shared:true});` +
    `const x=new Float32Array(m.buffer,0,4);x.set([1,2,3,4]);const c=new Float32Array(m.buffer,64,4);` +
    `a.sgemm(false,false,2,2,2,1,x,2,x,2,0,c,2);if(c[0]!==7||c[3]!==22)throw new Error('wrong result '+c);console.log(a.library)`;
  const p = run(process.execPath, ['--input-type=module', '-e', probe]);
  if (!p.ok) {
    rmSync(path.join(nativeDir, 'build'), { recursive: true, force: true });
    notice(`built but failed to load: ${lastError(p.out)}`, false);
  }
  console.log(`pocketlm: native BLAS addon built (${p.out.trim().split('\n').pop()}; found by ${blas.how})`);
}

main();
