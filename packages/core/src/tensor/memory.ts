import {
  type MemoryStats,
  emptyCache as nativeEmptyCache,
  memoryStats as nativeMemoryStats,
  resetPeakMemory as nativeResetPeak,
} from '@othink/native';
import type { Device } from './dtype.js';

export type { MemoryStats };

/**
 * Live and peak bytes of tensor memory on a device (the benchmarks' peak-memory figures); on CUDA
 * also what the caching allocator keeps (`cachedBytes`) and holds from the driver (`reservedBytes`).
 */
export function memoryStats(device: Device = 'cpu'): MemoryStats {
  return nativeMemoryStats(device);
}

/** Starts a new peak measurement at the current usage. */
export function resetPeakMemory(device: Device = 'cpu'): void {
  nativeResetPeak(device);
}

/** Gives the CUDA caching allocator's free blocks back to the driver (other processes can use them). */
export function emptyCache(device: Device = 'cuda'): void {
  nativeEmptyCache(device);
}
