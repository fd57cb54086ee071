/**
 * For the browser test and the README screenshot: the system's Chromium (Debian's `chromium`
 * package; never a downloaded browser) started headless with a fresh profile, driven through
 * playwright-core over the DevTools protocol. We start the process ourselves so the flags are
 * exactly these, then connect to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium'];

/** The system Chromium (CHROMIUM_PATH overrides), or null. */
export function findChromium(): string | null {
  const env = process.env.CHROMIUM_PATH;
  if (env) return fs.existsSync(env) ? env : null;
  return CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
}

export interface HeadlessChromium {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchChromium(exe: string, timeoutMs = 20_000): Promise<HeadlessChromium> {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-chromium-'));
  const child: ChildProcess = spawn(exe, [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const cleanup = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // Chromium's helper processes can still be writing into the profile for a moment after the
    // browser exits: retry, and leave a temp folder behind rather than fail over it.
    try {
      fs.rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch {
      // left in the temp folder
    }
  };
  try {
    const ws = await new Promise<string>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`chromium did not start in ${timeoutMs} ms: ${err.slice(-500)}`)), timeoutMs);
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (d: string) => {
        err += d;
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m) { clearTimeout(timer); resolve(m[1]!); }
      });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`chromium exited (${code}): ${err.slice(-500)}`)); });
    });
    child.stderr!.resume();
    const browser = await chromium.connectOverCDP(ws);
    return {
      browser,
      close: async () => {
        await browser.close().catch(() => undefined);
        await new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const t = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 3000);
          child.once('exit', () => { clearTimeout(t); resolve(); });
          child.kill('SIGTERM');
        });
        cleanup();
      },
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}
