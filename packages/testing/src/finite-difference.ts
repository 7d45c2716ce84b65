// Central finite differences for gradient checks.

/**
 * d f / d x[i] for the listed indices (all when omitted) by central differences with step h.
 * `f` reads `x` (which is perturbed in place and restored) and returns a scalar; it should
 * accumulate in float64 so the difference quotient is not swamped by rounding.
 */
export function finiteDifference(
  f: (x: Float64Array) => number,
  x: Float64Array,
  h = 1e-3,
  indices?: number[],
): Float64Array {
  const grad = new Float64Array(x.length);
  for (const i of indices ?? x.keys()) {
    const saved = x[i];
    x[i] = saved + h;
    const up = f(x);
    x[i] = saved - h;
    const down = f(x);
    x[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/** A seeded uniform generator (mulberry32) so tests are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` normal samples (Box-Muller) from a seeded generator, scaled by `std`. */
export function randomNormal(n: number, rand: () => number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}
