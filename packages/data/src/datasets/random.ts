// Seeded shuffling, few-shot subsampling and train / test splits; same seed, same result on every machine.

/** A seeded uniform generator on [0, 1) (mulberry32: 32-bit state, integer math only, so portable). */
export function createRng(seed: number): () => number {
  checkSeed(seed);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
}

/** A seeded permutation of `0..n-1` (Fisher-Yates from the back). */
export function permutation(n: number, seed: number): number[] {
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`permutation size must be a non-negative integer, got ${n}`);
  const rng = createRng(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** A shuffled copy of `items`. */
export function shuffle<T>(items: readonly T[], seed: number): T[] {
  return permutation(items.length, seed).map((i) => items[i]);
}

/**
 * `n` items chosen with a seed: the first `n` of `shuffle(items, seed)`, so a smaller subsample is a
 * prefix of a larger one with the same seed (the paper's 100 counting samples lie inside the 120).
 * Without a seed: the first `n` items in order.
 */
export function subsample<T>(items: readonly T[], n: number, seed?: number): T[] {
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`subsample size must be a non-negative integer, got ${n}`);
  if (n > items.length)
    throw new Error(`subsample: asked for ${n} samples but there are only ${items.length}`);
  if (seed === undefined) return items.slice(0, n);
  return permutation(items.length, seed)
    .slice(0, n)
    .map((i) => items[i]);
}

export interface SplitOptions {
  /** A fraction in (0, 1) (test count = ceil(fraction * n), as HF `train_test_split`) or a count. */
  testSize: number;
  /** Shuffle with this seed before splitting; without it the last items form the test set. */
  seed?: number;
}

/** Disjoint train and test parts covering all items (HF `train_test_split`: test first in the permutation). */
export function trainTestSplit<T>(items: readonly T[], options: SplitOptions): { train: T[]; test: T[] } {
  const n = items.length;
  const { testSize, seed } = options;
  let nTest: number;
  if (testSize > 0 && testSize < 1) nTest = Math.ceil(testSize * n);
  else if (Number.isInteger(testSize) && testSize >= 0 && testSize <= n) nTest = testSize;
  else throw new Error(`testSize must be a fraction in (0, 1) or a count in 0..${n}, got ${testSize}`);
  if (seed === undefined) return { train: items.slice(0, n - nTest), test: items.slice(n - nTest) };
  const order = permutation(n, seed);
  return { test: order.slice(0, nTest).map((i) => items[i]), train: order.slice(nTest).map((i) => items[i]) };
}
