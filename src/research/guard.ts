/**
 * The resource guard read before each trial: on a phone a study runs for hours, so it waits for
 * a charger when the battery is low, lets the device cool down when it is hot, and waits when
 * memory is short, instead of draining, throttling or getting killed. Each reading is optional:
 * a laptop has no battery, a container has no thermal zones, Android hides most of /sys.
 */
import type { DeviceHealth } from '../util/device.js';

// The readings moved to util/device.ts (shared with `pocketlm status` and the dashboard).
export { parseMemAvailableMb, parseTermuxBattery, readDeviceHealth, runTermuxBatteryStatus, type DeviceHealth, type ReadDeviceHealthOptions } from '../util/device.js';

export interface GuardThresholds {
  /** The memory a trial needs, in MB. */
  minFreeMemoryMb: number;
  minBatteryPercent: number;
  maxTemperatureC: number;
}

export type GuardVerdict = { ok: true } | { ok: false; reason: string; waitSeconds: number };

/** How long the study waits before reading the device again, per cause. */
export const GUARD_WAIT_SECONDS = { battery: 300, temperature: 120, memory: 60 } as const;


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
  // 0 = never, as --max-temperature says (0 degrees would otherwise hold back every device)
  if (health.temperatureC !== null && t.maxTemperatureC > 0 && health.temperatureC > t.maxTemperatureC) {
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
