/**
 * What the device says about itself: memory, battery, temperature (read before each research
 * trial by the resource guard, and shown by `pocketlm status` and the dashboard), plus CPU load
 * and free disk. Each reading is optional: a laptop has no battery, a container has no thermal
 * zones, Android hides most of /sys from apps (then Termux:API's termux-battery-status tells
 * the battery).
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


/** The 1, 5 and 15 minute load averages from a /proc/loadavg text, or null. */
export function parseLoadAvg(text: string): [number, number, number] | null {
  const f = text.trim().split(/\s+/).slice(0, 3).map(Number);
  return f.length === 3 && f.every((x) => Number.isFinite(x) && x >= 0) ? [f[0]!, f[1]!, f[2]!] : null;
}

/** Idle and total jiffies of the "cpu" line of a /proc/stat text (idle counts iowait), or null. */
export function parseProcStat(text: string): { idle: number; total: number } | null {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return null;
  // user nice system idle iowait irq softirq steal (guest time is already counted in user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { idle: f[3]! + (f[4] ?? 0), total };
}

/** The share of CPU time not idle between two /proc/stat readings, in percent, or null. */
export function busyPercent(a: { idle: number; total: number }, b: { idle: number; total: number }): number | null {
  const dt = b.total - a.total;
  if (!(dt > 0)) return null;
  return Math.max(0, Math.min(100, (100 * (dt - (b.idle - a.idle))) / dt));
}

export interface SystemStatus extends DeviceHealth {
  totalMemoryMb: number;
  cores: number;
  /** From /proc/loadavg (null when unreadable: Android denies it to apps since 8). */
  loadAverage: [number, number, number] | null;
  /** CPU time not idle over the sampling interval, all cores, in percent (null when /proc/stat is unreadable). */
  cpuBusyPercent: number | null;
  /** Free space for this user, and size, of the file system holding `diskPath`. */
  diskPath: string;
  diskFreeMb: number | null;
  diskTotalMb: number | null;
}

export interface ReadSystemStatusOptions extends ReadDeviceHealthOptions {
  /** A folder on the file system to report (the runs folder; default the current folder). */
  diskPath?: string;
  /** How long to sample CPU time for the busy share (ms, default 250). */
  sampleMs?: number;
}

/** Everything `pocketlm status` and the dashboard show about the machine. */
export async function readSystemStatus(opts: ReadSystemStatusOptions = {}): Promise<SystemStatus> {
  const root = opts.sysRoot ?? '/';
  const statFile = path.join(root, 'proc/stat');
  const before = parseProcStat(readText(statFile) ?? '');
  const [health] = await Promise.all([
    readDeviceHealth(opts),
    new Promise((resolve) => setTimeout(resolve, opts.sampleMs ?? 250)),
  ]);
  const after = parseProcStat(readText(statFile) ?? '');
  const diskPath = path.resolve(opts.diskPath ?? '.');
  let diskFreeMb: number | null = null;
  let diskTotalMb: number | null = null;
  try {
    const s = fs.statfsSync(diskPath);
    diskFreeMb = (s.bavail * s.bsize) / 2 ** 20;
    diskTotalMb = (s.blocks * s.bsize) / 2 ** 20;
  } catch {
    // absent folder or a platform without statfs: unknown
  }
  return {
    ...health,
    totalMemoryMb: os.totalmem() / 2 ** 20,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    loadAverage: parseLoadAvg(readText(path.join(root, 'proc/loadavg')) ?? ''),
    cpuBusyPercent: before && after ? busyPercent(before, after) : null,
    diskPath,
    diskFreeMb,
    diskTotalMb,
  };
}
