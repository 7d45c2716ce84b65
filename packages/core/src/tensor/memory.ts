import {
  type MemoryStats,
  memoryStats as nativeMemoryStats,
  resetPeakMemory as nativeResetPeak,
} from '@othink/native';
import type { Device } from './dtype.js';

export type { MemoryStats };

/** Live and peak bytes of tensor memory on a device (the benchmarks' peak-memory figures). */
export function memoryStats(device: Device = 'cpu'): MemoryStats {
  return nativeMemoryStats(device);
}

/** Starts a new peak measurement at the current usage. */
export function resetPeakMemory(device: Device = 'cpu'): void {
  nativeResetPeak(device);
}
