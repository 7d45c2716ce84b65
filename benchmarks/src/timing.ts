/**
 * Timing helpers of the benchmarks: warm-up, repetitions, median / min / max, bytes per second and
 * peak memory. Everything is wall-clock (`process.hrtime.bigint`), in seconds.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

export interface Stats {
  /** Median of the timed repetitions (the number every table reports). */
  median: number;
  min: number;
  max: number;
  /** Timed repetitions (warm-ups excluded). */
  reps: number;
  samples: number[];
  /** Minor page faults per timed run (mean), counted outside the timed window. */
  faults?: number;
}

/** Seconds since an arbitrary origin, nanosecond resolution. */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Minor page faults of this process so far (first touches of fresh memory). */
export function pageFaults(): number {
  return process.resourceUsage().minorPageFault;
}

export function stats(samples: readonly number[], faults?: readonly number[]): Stats {
  return {
    ...(faults?.length ? { faults: faults.reduce((a, b) => a + b, 0) / faults.length } : {}),
    median: median(samples),
    min: samples.length ? Math.min(...samples) : Number.NaN,
    max: samples.length ? Math.max(...samples) : Number.NaN,
    reps: samples.length,
    samples: [...samples],
  };
}

/** Runs the full garbage collector when the process was started with `--expose-gc` (children are). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  gc();
  // V8 finishes sweeping on background threads after gc() returns; on a 2-core machine they would
  // take a core from the next timed run (a multithreaded kernel then waits for its slowest
  // thread). Spin meanwhile rather than sleep: an idle core wakes slowly (tens of microseconds).
  const until = performance.now() + 5;
  while (performance.now() < until);
}

export interface TimeOptions {
  /** Untimed runs first (JIT, page faults, thread pool start). Default 1. */
  warmup?: number;
  /** Timed runs. Default 5. */
  reps?: number;
  /** Untimed work before each run (warm-ups included), e.g. refreshing an in-place buffer. */
  before?: () => void;
  /** Untimed work after each run, e.g. dropping the result and collecting garbage. */
  after?: () => void;
}

/** Times `fn` `reps` times after `warmup` untimed runs. */
export function timeIt(fn: () => unknown, opts: TimeOptions = {}): Stats {
  const { warmup = 1, reps = 5, before, after } = opts;
  const samples: number[] = [];
  const faults: number[] = [];
  for (let r = 0; r < warmup + reps; r++) {
    before?.();
    const f0 = pageFaults();
    const t0 = now();
    fn();
    const t = now() - t0;
    const f = pageFaults() - f0;
    after?.();
    if (r >= warmup) {
      samples.push(t);
      faults.push(f);
    }
  }
  return stats(samples, faults);
}

export interface Task {
  name: string;
  /** The timed work. */
  run: () => unknown;
  before?: () => void;
  after?: () => void;
}

/**
 * Runs the tasks round-robin (`warmup` untimed rounds, then `reps` timed ones), so that every
 * compared implementation sees the same machine state (load, frequency) within one run: a noisy
 * moment hits one sample of each, not all the samples of one.
 */
export function timeInterleaved(
  tasks: readonly Task[],
  opts: { warmup?: number; reps?: number } = {},
): Record<string, Stats> {
  const { warmup = 1, reps = 5 } = opts;
  const samples: Record<string, number[]> = Object.fromEntries(tasks.map((t) => [t.name, []]));
  const faults: Record<string, number[]> = Object.fromEntries(tasks.map((t) => [t.name, []]));
  for (let r = 0; r < warmup + reps; r++) {
    for (const task of tasks) {
      task.before?.();
      const f0 = pageFaults();
      const t0 = now();
      task.run();
      const t = now() - t0;
      const f = pageFaults() - f0;
      task.after?.();
      if (r >= warmup) {
        samples[task.name].push(t);
        faults[task.name].push(f);
      }
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, stats(v, faults[k])]));
}

/** Bytes per second in GB/s (1e9 bytes). */
export function gbps(bytes: number, seconds: number): number {
  return bytes / seconds / 1e9;
}

/** Floating-point operations per second in TFLOP/s (1e12). */
export function tflops(flops: number, seconds: number): number {
  return flops / seconds / 1e12;
}

/** Peak resident set size of this process so far, in bytes (a high-water mark: it never goes down). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Current resident set size, in bytes. */
export function currentRss(): number {
  return process.memoryUsage.rss();
}

/** `MemAvailable` from /proc/meminfo in bytes (what can be allocated without swapping), or null. */
export function memAvailable(): number | null {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The 1, 5 and 15 minute load averages. */
export function load(): [number, number, number] {
  const [a, b, c] = loadavg();
  return [a, b, c];
}

export const MB = 1024 * 1024;
export const GB = 1024 * MB;
