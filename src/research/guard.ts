/**
 * The resource guard read before each trial: on a phone a study runs for hours, so it waits for
 * a charger when the battery is low, lets the device cool down when it is hot, and waits when
 * memory is short, instead of draining, throttling or getting killed. Each reading is optional:
 * a laptop has no battery, a container has no thermal zones, Android hides most of /sys.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface DeviceHealth {
  /** os.freemem() in MB. */
  freeMemoryMb: number | null;
  /** MemAvailable from /proc/meminfo in MB (free + reclaimable cache: what a new process can get). */
  availableMemoryMb: number | null;
  batteryPercent: number | null;
  /** True when charging or full on external power, false when discharging, null when unknown. */
  charging: boolean | null;
  /** Where the battery figures came from. */
  batterySource: 'sysfs' | 'termux' | null;
  /** The hottest thermal zone in °C, and its name (its `type` file, else the zone folder). */
  temperatureC: number | null;
  temperatureSource: string | null;
}

export interface GuardThresholds {
  /** The memory a trial needs, in MB. */
  minFreeMemoryMb: number;
  minBatteryPercent: number;
  maxTemperatureC: number;
}

export type GuardVerdict = { ok: true } | { ok: false; reason: string; waitSeconds: number };

/** How long the study waits before reading the device again, per cause. */
export const GUARD_WAIT_SECONDS = { battery: 300, temperature: 120, memory: 60 } as const;

export interface ReadDeviceHealthOptions {
  /** The file-system root holding proc/ and sys/ ('/' by default; tests point it at a fake tree). */
  sysRoot?: string;
  /** The output of `termux-battery-status` (JSON), or null when unavailable. Default: run it when it is on PATH, 5 s timeout. */
  termuxBatteryStatus?: () => Promise<string | null>;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null; // absent, or unreadable (Android's SELinux denies most of /sys to apps)
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** MemAvailable in MB from a /proc/meminfo text, or null. */
export function parseMemAvailableMb(meminfo: string): number | null {
  for (const line of meminfo.split('\n')) {
    const m = /^MemAvailable:\s+(\d+)\s*kB/.exec(line);
    if (m) return Number(m[1]) / 1024;
  }
  return null;
}

interface Battery {
  percent: number | null;
  charging: boolean | null;
}

/** The first battery under power_supply with a readable capacity; charging also when a mains/USB supply is online. */
function readSysfsBattery(root: string): Battery | null {
  const dir = path.join(root, 'sys/class/power_supply');
  let battery: Battery | null = null;
  let externalOnline = false;
  for (const name of listDir(dir)) {
    const type = readText(path.join(dir, name, 'type'));
    if (type === 'Battery') {
      if (battery) continue;
      const cap = Number(readText(path.join(dir, name, 'capacity')) ?? NaN);
      if (!Number.isFinite(cap)) continue;
      const status = readText(path.join(dir, name, 'status'));
      battery = {
        percent: Math.max(0, Math.min(100, cap)),
        charging: status === null || status === 'Unknown' ? null : status === 'Charging' || status === 'Full',
      };
    } else if (type !== null && readText(path.join(dir, name, 'online')) === '1') {
      externalOnline = true; // Mains, USB, USB_C, Wireless...
    }
  }
  if (battery && externalOnline) battery.charging = true;
  return battery;
}

/** Battery figures from `termux-battery-status` JSON, or null when it does not parse. */
export function parseTermuxBattery(json: string): Battery | null {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const percent = typeof o.percentage === 'number' && Number.isFinite(o.percentage) ? o.percentage : null;
  if (percent === null) return null;
  const status = typeof o.status === 'string' ? o.status.toUpperCase() : null;
  const plugged = typeof o.plugged === 'string' ? o.plugged.toUpperCase() : null;
  let charging: boolean | null = null;
  if (status === 'CHARGING' || status === 'FULL' || (plugged !== null && plugged !== 'UNPLUGGED')) charging = true;
  else if (status === 'DISCHARGING' || status === 'NOT_CHARGING' || plugged === 'UNPLUGGED') charging = false;
  return { percent, charging };
}

/** The hottest plausible thermal zone. Zones report millidegrees; a few Android kernels report degrees, and some zones report junk (-273, 0 for "off"). */
function readHottestZone(root: string): { c: number; name: string } | null {
  const dir = path.join(root, 'sys/class/thermal');
  let best: { c: number; name: string } | null = null;
  for (const name of listDir(dir)) {
    if (!name.startsWith('thermal_zone')) continue;
    const raw = Number(readText(path.join(dir, name, 'temp')) ?? NaN);
    if (!Number.isFinite(raw)) continue;
    const c = Math.abs(raw) >= 1000 ? raw / 1000 : raw;
    if (c <= 0 || c >= 150) continue;
    if (!best || c > best.c) best = { c, name: readText(path.join(dir, name, 'type')) || name };
  }
  return best;
}

/** The path of an executable named `cmd` on PATH, or null. */
function onPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Runs termux-battery-status when it is on PATH (Termux:API); null when absent, failing or slower than 5 s (it hangs when the Termux:API app is missing). */
export function runTermuxBatteryStatus(): Promise<string | null> {
  const exe = onPath('termux-battery-status');
  if (!exe) return Promise.resolve(null);
  return new Promise((resolve) => {
    execFile(exe, [], { timeout: 5000, maxBuffer: 64 * 1024 }, (err, stdout) => resolve(err ? null : stdout));
  });
}

/** Reads memory, battery and temperature; every figure null when the device does not tell. */
export async function readDeviceHealth(opts: ReadDeviceHealthOptions = {}): Promise<DeviceHealth> {
  const root = opts.sysRoot ?? '/';
  const meminfo = readText(path.join(root, 'proc/meminfo'));
  const health: DeviceHealth = {
    freeMemoryMb: os.freemem() / (1024 * 1024),
    availableMemoryMb: meminfo === null ? null : parseMemAvailableMb(meminfo),
    batteryPercent: null,
    charging: null,
    batterySource: null,
    temperatureC: null,
    temperatureSource: null,
  };
  let battery = readSysfsBattery(root);
  if (battery) {
    health.batterySource = 'sysfs';
  } else {
    // Android hides /sys/class/power_supply from apps: ask Termux:API instead.
    const json = await (opts.termuxBatteryStatus ?? runTermuxBatteryStatus)();
    battery = json === null ? null : parseTermuxBattery(json);
    if (battery) health.batterySource = 'termux';
  }
  if (battery) {
    health.batteryPercent = battery.percent;
    health.charging = battery.charging;
  }
  const zone = readHottestZone(root);
  if (zone) {
    health.temperatureC = zone.c;
    health.temperatureSource = zone.name;
  }
  return health;
}

function fmt(x: number, digits = 0): string {
  return x.toFixed(digits);
}

/**
 * Whether the next trial may start. Battery first (a dying phone loses the study), then heat
 * (a throttled CPU skews tokens/s and seconds budgets), then memory. Unknown readings pass.
 */
export function guardVerdict(health: DeviceHealth, t: GuardThresholds): GuardVerdict {
  if (health.batteryPercent !== null && health.batteryPercent < t.minBatteryPercent && health.charging !== true) {
    const state = health.charging === false ? 'not charging' : 'charging state unknown';
    return {
      ok: false,
      reason: `battery ${fmt(health.batteryPercent)}% is below ${fmt(t.minBatteryPercent)}% and ${state}: waiting for a charger`,
      waitSeconds: GUARD_WAIT_SECONDS.battery,
    };
  }
  if (health.temperatureC !== null && health.temperatureC > t.maxTemperatureC) {
    const where = health.temperatureSource ? ` (${health.temperatureSource})` : '';
    return {
      ok: false,
      reason: `temperature ${fmt(health.temperatureC, 1)} °C${where} is above ${fmt(t.maxTemperatureC, 1)} °C: cooling down`,
      waitSeconds: GUARD_WAIT_SECONDS.temperature,
    };
  }
  const memory = health.availableMemoryMb ?? health.freeMemoryMb;
  if (memory !== null && memory < t.minFreeMemoryMb) {
    const what = health.availableMemoryMb !== null ? 'available memory' : 'free memory';
    return {
      ok: false,
      reason: `${what} ${fmt(memory)} MB is below the ${fmt(t.minFreeMemoryMb)} MB a trial needs: waiting`,
      waitSeconds: GUARD_WAIT_SECONDS.memory,
    };
  }
  return { ok: true };
}
