/** The resource guard: readings from fake /proc and /sys trees and a fake termux-battery-status, and the verdicts. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readDeviceHealth, guardVerdict, runTermuxBatteryStatus, parseMemAvailableMb, parseTermuxBattery, GUARD_WAIT_SECONDS, type DeviceHealth } from './guard.js';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-guard-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fake root: `files` maps paths under it to contents. */
function tree(files: Record<string, string>): string {
  const root = path.join(tmp, `root${n++}`);
  fs.mkdirSync(root);
  for (const [p, text] of Object.entries(files)) {
    fs.mkdirSync(path.join(root, path.dirname(p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text + '\n');
  }
  return root;
}

const MEMINFO = 'MemTotal:        3906252 kB\nMemFree:          204800 kB\nMemAvailable:    1536000 kB\nBuffers:           10000 kB\n';
const noTermux = async () => null;

test('readDeviceHealth: a laptop tree (battery, AC adapter, thermal zones, meminfo)', async () => {
  const root = tree({
    'proc/meminfo': MEMINFO,
    'sys/class/power_supply/AC/type': 'Mains',
    'sys/class/power_supply/AC/online': '0',
    'sys/class/power_supply/BAT0/type': 'Battery',
    'sys/class/power_supply/BAT0/capacity': '42',
    'sys/class/power_supply/BAT0/status': 'Discharging',
    'sys/class/thermal/thermal_zone0/temp': '45000',
    'sys/class/thermal/thermal_zone0/type': 'acpitz',
    'sys/class/thermal/thermal_zone1/temp': '67500',
    'sys/class/thermal/thermal_zone1/type': 'x86_pkg_temp',
    'sys/class/thermal/cooling_device0/cur_state': '0',
  });
  let asked = 0;
  const h = await readDeviceHealth({ sysRoot: root, termuxBatteryStatus: async () => { asked++; return null; } });
  assert.equal(h.availableMemoryMb, 1500);
  assert.ok(h.freeMemoryMb !== null && h.freeMemoryMb > 0);
  assert.equal(h.batteryPercent, 42);
  assert.equal(h.charging, false);
  assert.equal(h.batterySource, 'sysfs');
  assert.equal(h.temperatureC, 67.5);
  assert.equal(h.temperatureSource, 'x86_pkg_temp');
  assert.equal(asked, 0, 'termux is not asked when sysfs has a battery');
});

test('readDeviceHealth: charging when the battery says so or an external supply is online', async () => {
  const full = tree({ 'sys/class/power_supply/BAT1/type': 'Battery', 'sys/class/power_supply/BAT1/capacity': '100', 'sys/class/power_supply/BAT1/status': 'Full' });
  assert.equal((await readDeviceHealth({ sysRoot: full, termuxBatteryStatus: noTermux })).charging, true);
  const usb = tree({
    'sys/class/power_supply/battery/type': 'Battery',
    'sys/class/power_supply/battery/capacity': '15',
    'sys/class/power_supply/battery/status': 'Not charging',
    'sys/class/power_supply/usb/type': 'USB',
    'sys/class/power_supply/usb/online': '1',
  });
  const h = await readDeviceHealth({ sysRoot: usb, termuxBatteryStatus: noTermux });
  assert.equal(h.batteryPercent, 15);
  assert.equal(h.charging, true);
});

test('readDeviceHealth: an Android tree (no readable battery) asks termux-battery-status', async () => {
  const root = tree({
    'proc/meminfo': MEMINFO,
    // Present but unreadable from an app: modelled as a battery without a capacity file.
    'sys/class/power_supply/battery/type': 'Battery',
    'sys/class/thermal/thermal_zone0/temp': '-273000',
    'sys/class/thermal/thermal_zone1/temp': '38',
    'sys/class/thermal/thermal_zone2/temp': 'garbage',
  });
  const json = JSON.stringify({ health: 'GOOD', percentage: 18, plugged: 'UNPLUGGED', status: 'DISCHARGING', temperature: 31.2 });
  const h = await readDeviceHealth({ sysRoot: root, termuxBatteryStatus: async () => json });
  assert.equal(h.batteryPercent, 18);
  assert.equal(h.charging, false);
  assert.equal(h.batterySource, 'termux');
  // -273 °C is junk; 38 is a zone reporting degrees rather than millidegrees.
  assert.equal(h.temperatureC, 38);
  assert.equal(h.temperatureSource, 'thermal_zone1');
});

test('readDeviceHealth: nothing readable gives nulls, not errors', async () => {
  const h = await readDeviceHealth({ sysRoot: tree({}), termuxBatteryStatus: async () => 'termux-api: not installed' });
  assert.deepEqual(
    [h.availableMemoryMb, h.batteryPercent, h.charging, h.batterySource, h.temperatureC, h.temperatureSource],
    [null, null, null, null, null, null],
  );
  assert.ok(h.freeMemoryMb !== null && h.freeMemoryMb > 0);
});

test('parsers: meminfo and termux JSON', () => {
  assert.equal(parseMemAvailableMb(MEMINFO), 1500);
  assert.equal(parseMemAvailableMb('MemTotal: 100 kB\nMemFree: 50 kB\n'), null);
  assert.deepEqual(parseTermuxBattery('{"percentage": 55, "plugged": "PLUGGED_AC", "status": "NOT_CHARGING"}'), { percent: 55, charging: true });
  assert.deepEqual(parseTermuxBattery('{"percentage": 55, "status": "CHARGING"}'), { percent: 55, charging: true });
  assert.deepEqual(parseTermuxBattery('{"percentage": 55}'), { percent: 55, charging: null });
  assert.equal(parseTermuxBattery('{"status": "CHARGING"}'), null);
  assert.equal(parseTermuxBattery('not json'), null);
  assert.equal(parseTermuxBattery('null'), null);
});

const healthy: DeviceHealth = {
  freeMemoryMb: 900, availableMemoryMb: 2000, batteryPercent: 80, charging: false, batterySource: 'sysfs', temperatureC: 50, temperatureSource: 'cpu',
};
const limits = { minFreeMemoryMb: 1024, minBatteryPercent: 20, maxTemperatureC: 70 };

test('guardVerdict: ok when every reading is within its limit or unknown', () => {
  assert.deepEqual(guardVerdict(healthy, limits), { ok: true });
  const unknown: DeviceHealth = { freeMemoryMb: null, availableMemoryMb: null, batteryPercent: null, charging: null, batterySource: null, temperatureC: null, temperatureSource: null };
  assert.deepEqual(guardVerdict(unknown, limits), { ok: true });
  // 0 turns the checks off: a hot phone with an empty battery passes --min-battery 0 --max-temperature 0
  assert.deepEqual(guardVerdict({ ...healthy, batteryPercent: 3, charging: false, temperatureC: 71 }, { ...limits, minBatteryPercent: 0, maxTemperatureC: 0 }), { ok: true });
  // Low battery on a charger is fine.
  assert.deepEqual(guardVerdict({ ...healthy, batteryPercent: 5, charging: true }, limits), { ok: true });
});

test('guardVerdict: low battery waits for a charger, with the figures', () => {
  const v = guardVerdict({ ...healthy, batteryPercent: 12 }, limits);
  assert.deepEqual(v, { ok: false, reason: 'battery 12% is below 20% and not charging: waiting for a charger', waitSeconds: GUARD_WAIT_SECONDS.battery });
  const unknownState = guardVerdict({ ...healthy, batteryPercent: 12, charging: null }, limits);
  assert.ok(!unknownState.ok && unknownState.reason.includes('charging state unknown'));
});

test('guardVerdict: heat cools down, short memory waits; one line each', () => {
  const hot = guardVerdict({ ...healthy, temperatureC: 74.25 }, limits);
  assert.deepEqual(hot, { ok: false, reason: 'temperature 74.3 °C (cpu) is above 70.0 °C: cooling down', waitSeconds: GUARD_WAIT_SECONDS.temperature });
  const short = guardVerdict({ ...healthy, availableMemoryMb: 700 }, limits);
  assert.deepEqual(short, { ok: false, reason: 'available memory 700 MB is below the 1024 MB a trial needs: waiting', waitSeconds: GUARD_WAIT_SECONDS.memory });
  // MemAvailable is preferred over os.freemem (900 here, below the need, but page cache is reclaimable).
  assert.deepEqual(guardVerdict({ ...healthy, freeMemoryMb: 100 }, limits), { ok: true });
  const noMeminfo = guardVerdict({ ...healthy, availableMemoryMb: null }, limits);
  assert.ok(!noMeminfo.ok && noMeminfo.reason.startsWith('free memory 900 MB'));
  // Battery is reported first when several limits are crossed.
  const all = guardVerdict({ ...healthy, batteryPercent: 3, temperatureC: 90, availableMemoryMb: 10 }, limits);
  assert.ok(!all.ok && all.reason.startsWith('battery 3%'));
  for (const v of [hot, short, all]) assert.ok(!v.ok && !v.reason.includes('\n'));
});

test('runTermuxBatteryStatus: runs termux-battery-status only when it is on PATH', async () => {
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  const saved = process.env.PATH;
  try {
    process.env.PATH = bin;
    assert.equal(await runTermuxBatteryStatus(), null);
    const script = path.join(bin, 'termux-battery-status');
    fs.writeFileSync(script, `#!/bin/sh\necho '{"percentage": 64, "status": "CHARGING", "plugged": "PLUGGED_USB"}'\n`);
    fs.chmodSync(script, 0o755);
    const h = await readDeviceHealth({ sysRoot: tree({}) });
    assert.deepEqual([h.batteryPercent, h.charging, h.batterySource], [64, true, 'termux']);
    fs.writeFileSync(script, '#!/bin/sh\nexit 3\n');
    assert.equal(await runTermuxBatteryStatus(), null);
  } finally {
    process.env.PATH = saved;
  }
});
