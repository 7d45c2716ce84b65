/** Deterministic test inputs for the benchmarks (fast to make even at billions of elements). */

/** A small xorshift32 generator returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/**
 * Fills `a` with uniform values in [lo, hi). A block of a prime number of random values is made
 * and then tiled with `copyWithin` (memmove speed), so multi-GB arrays take a second, not minutes,
 * and rows of any power-of-two width do not repeat the same values. Every page gets written, so
 * the array is resident afterwards.
 */
export function fillUniform(a: Float32Array, lo: number, hi: number, seed = 1): Float32Array {
  const block = Math.min(a.length, 1_048_583);
  const r = rng(seed);
  const w = hi - lo;
  for (let i = 0; i < block; i++) a[i] = lo + w * r();
  for (let filled = block; filled < a.length; filled *= 2)
    a.copyWithin(filled, 0, Math.min(filled, a.length - filled));
  return a;
}

export function uniform(n: number, lo: number, hi: number, seed = 1): Float32Array {
  return fillUniform(new Float32Array(n), lo, hi, seed);
}

/** `n` token ids uniform in [0, vocab). */
export function randomTargets(n: number, vocab: number, seed = 2): Int32Array {
  const r = rng(seed);
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) t[i] = Math.floor(r() * vocab);
  return t;
}

/** The largest absolute difference between two arrays of the same length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > m || Number.isNaN(d)) m = d;
  }
  return m;
}
