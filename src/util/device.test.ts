/** Machine readings for `pocketlm status` and the dashboard, from fake /proc and /sys trees (battery and thermal zones: research/guard.test.ts). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { busyPercent, parseLoadAvg, parseProcStat, readSystemStatus } from './device.js';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-device-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string>): string {
  const root = path.join(tmp, name);
  for (const [p, text] of Object.entries(files)) {
    fs.mkdirSync(path.join(root, path.dirname(p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text + '\n');
  }
  fs.mkdirSync(root, { recursive: true });
  return root;
}

const STAT_A = 'cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3';
const STAT_B = 'cpu  250 0 100 850 50 0 0 0 0 0\ncpu0 125 0 50 425 25 0 0 0 0 0\nintr 1 2 3';

test('load average and CPU busy share are parsed from /proc texts', () => {
  assert.deepEqual(parseLoadAvg('0.52 1.10 2.00 1/123 4567'), [0.52, 1.1, 2]);
  assert.equal(parseLoadAvg('garbage'), null);
  assert.deepEqual(parseProcStat(STAT_A), { idle: 850, total: 1000 });
  // between A and B: 250 jiffies, 50 of them idle -> 80 % busy
  assert.equal(busyPercent(parseProcStat(STAT_A)!, parseProcStat(STAT_B)!), 80);
  assert.equal(busyPercent(parseProcStat(STAT_A)!, parseProcStat(STAT_A)!), null, 'no time passed: unknown, not 0');
  assert.equal(parseProcStat('intr 1 2'), null);
});

test('readSystemStatus: a phone-like tree (battery and thermal zone in sysfs, loadavg) and free disk of the folder', async () => {
  const root = tree('phone', {
    'proc/meminfo': 'MemTotal: 5000000 kB\nMemAvailable: 2048000 kB',
    'proc/loadavg': '3.50 2.25 1.00 2/900 31337',
    'proc/stat': STAT_A,
    'sys/class/power_supply/battery/type': 'Battery',
    'sys/class/power_supply/battery/capacity': '57',
    'sys/class/power_supply/battery/status': 'Discharging',
    'sys/class/thermal/thermal_zone0/type': 'cpu-0-0',
    'sys/class/thermal/thermal_zone0/temp': '41500',
  });
  const s = await readSystemStatus({ sysRoot: root, diskPath: tmp, sampleMs: 5, termuxBatteryStatus: async () => null });
  assert.deepEqual(s.loadAverage, [3.5, 2.25, 1]);
  assert.equal(s.cpuBusyPercent, null, 'the fixture /proc/stat does not move');
  assert.equal(s.availableMemoryMb, 2000);
  assert.equal(s.batteryPercent, 57);
  assert.equal(s.charging, false);
  assert.equal(s.temperatureC, 41.5);
  assert.equal(s.temperatureSource, 'cpu-0-0');
  const fsStat = fs.statfsSync(tmp);
  assert.ok(s.diskFreeMb !== null && Math.abs(s.diskFreeMb - (fsStat.bavail * fsStat.bsize) / 2 ** 20) < 64);
  assert.ok(s.diskTotalMb! >= s.diskFreeMb!);
  assert.ok(s.cores >= 1 && s.totalMemoryMb > 0);
});

test('readSystemStatus: an Android app sees no /proc/loadavg, no /proc/stat, no battery in sysfs: Termux:API answers for the battery', async () => {
  const root = tree('android', { 'proc/meminfo': 'MemAvailable: 1024000 kB' });
  const s = await readSystemStatus({
    sysRoot: root, diskPath: path.join(tmp, 'absent-folder'), sampleMs: 1,
    termuxBatteryStatus: async () => '{"health":"GOOD","percentage":83,"plugged":"PLUGGED_USB","status":"CHARGING","temperature":30.1}',
  });
  assert.equal(s.loadAverage, null);
  assert.equal(s.cpuBusyPercent, null);
  assert.equal(s.batteryPercent, 83);
  assert.equal(s.charging, true);
  assert.equal(s.batterySource, 'termux');
  assert.equal(s.temperatureC, null);
  assert.equal(s.diskFreeMb, null, 'an absent folder: unknown');
});
