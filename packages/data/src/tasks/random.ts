// Seeded randomness for the synthetic tasks. Sample i of a run draws from its own stream, derived
// from (seed, i), so the first n samples are the same whatever n is, and nothing depends on
// Math.random or on the machine (32-bit integer math only). The generator itself is the datasets'
// mulberry32 (`createRng`).
import { createRng } from '../datasets/random.js';

/** SplitMix32-style finaliser: a well-mixed 32-bit value from a 32-bit input. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

export class TaskRng {
  /** Uniform on [0, 1). */
  readonly float: () => number;

  /** A generator for sample `index` of a run with `seed` (`stream` separates independent uses). */
  constructor(seed: number, index = 0, stream = 0) {
    if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
    // Fold the high bits of large seeds in, so seeds 1 and 2^32 + 1 differ.
    const hi = Math.floor(seed / 2 ** 32);
    this.float = createRng(
      mix32(
        mix32(mix32(seed >>> 0) ^ mix32(hi + 0x9e3779b9)) ^
          mix32(index + 0x632be5ab) ^
          mix32(stream + 0x85ebca6b),
      ),
    );
  }

  /** Uniform on [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    if (hi < lo) throw new Error(`TaskRng.int: empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('TaskRng.pick: no items');
    return items[Math.floor(this.float() * items.length)];
  }

  /** `items` in random order (Fisher-Yates on a copy). */
  shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.float() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  chance(p: number): boolean {
    return this.float() < p;
  }
}
