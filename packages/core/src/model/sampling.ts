// Choosing the next token from a row of logits: greedy, or sampling with temperature, top-k and
// top-p from a seeded generator, with the log-probability of the chosen token.

export interface SamplingConfig {
  /** false: greedy (argmax). */
  doSample: boolean;
  /** Divides the logits (sampling only). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0: off). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1: off). */
  topP?: number;
}

/** A seeded uniform generator (mulberry32): reproducible sampling, and its state can be saved. */
export class Random {
  constructor(public state: number) {
    this.state = state >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export function checkSamplingConfig(c: SamplingConfig): void {
  if (c.temperature !== undefined && !(c.temperature > 0))
    throw new RangeError(`temperature must be > 0 (got ${c.temperature})`);
  if (c.topK !== undefined && !(Number.isInteger(c.topK) && c.topK >= 0))
    throw new RangeError(`topK must be an integer >= 0 (got ${c.topK})`);
  if (c.topP !== undefined && !(c.topP > 0 && c.topP <= 1))
    throw new RangeError(`topP must be in (0, 1] (got ${c.topP})`);
}

/**
 * The next token from logits[0..V) and its log-probability under the distribution it was drawn
 * from: softmax(logits / T) before top-k / top-p truncation (greedy: T = 1).
 */
export function sampleToken(
  logits: Float32Array,
  config: SamplingConfig,
  rand: Random,
): { token: number; logprob: number } {
  const v = logits.length;
  const t = config.doSample ? (config.temperature ?? 1) : 1;
  let max = Number.NEGATIVE_INFINITY;
  let argmax = 0;
  for (let i = 0; i < v; i++) {
    if (logits[i] > max) {
      max = logits[i];
      argmax = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < v; i++) sum += Math.exp((logits[i] - max) / t);
  const logZ = Math.log(sum);
  const logprobOf = (i: number) => (logits[i] - max) / t - logZ;
  if (!config.doSample) return { token: argmax, logprob: logprobOf(argmax) };

  // Candidates, most likely first, truncated by top-k then top-p (HF's order of warpers).
  const topK = config.topK && config.topK > 0 ? Math.min(config.topK, v) : v;
  const topP = config.topP ?? 1;
  let candidates: number[];
  if (topK === v && topP >= 1) {
    // Plain sampling: one pass, no sort.
    let u = rand.next() * sum;
    for (let i = 0; i < v; i++) {
      u -= Math.exp((logits[i] - max) / t);
      if (u <= 0) return { token: i, logprob: logprobOf(i) };
    }
    return { token: argmax, logprob: logprobOf(argmax) };
  }
  if (topK < v) {
    candidates = largest(logits, topK);
  } else {
    // top-p alone: the smallest most-likely-first prefix whose mass reaches topP, found among the
    // top k for growing k (usually a few hundred tokens: no sort of the whole vocabulary).
    for (let k = Math.min(v, 256); ; k = Math.min(v, k * 8)) {
      candidates = largest(logits, k);
      let mass = 0;
      for (const i of candidates) mass += Math.exp(logprobOf(i));
      if (mass >= topP || k === v) break;
    }
  }
  if (topP < 1) {
    let mass = 0;
    let keep = 0;
    for (const i of candidates) {
      mass += Math.exp(logprobOf(i));
      keep++;
      if (mass >= topP) break;
    }
    candidates = candidates.slice(0, keep);
  }
  let total = 0;
  for (const i of candidates) total += Math.exp(logprobOf(i));
  let u = rand.next() * total;
  for (const i of candidates) {
    u -= Math.exp(logprobOf(i));
    if (u <= 0) return { token: i, logprob: logprobOf(i) };
  }
  const last = candidates[candidates.length - 1];
  return { token: last, logprob: logprobOf(last) };
}

/**
 * The indices of the k largest logits, largest first and ties by index: the first k of the whole
 * vocabulary sorted by (logit descending, index ascending), found without sorting it (a selection
 * of the k-th largest value, then a sort of the k winners).
 */
export function largest(logits: Float32Array, k: number): number[] {
  const v = logits.length;
  const byValue = (a: number, b: number) => logits[b] - logits[a] || a - b;
  if (k <= 0) return [];
  if (k * 4 >= v || logits.some(Number.isNaN)) {
    // Most of the vocabulary (or NaNs, which only the full comparator orders as before): sort it all.
    return Array.from({ length: v }, (_, i) => i)
      .sort(byValue)
      .slice(0, k);
  }
  const threshold = kthLargest(Float32Array.from(logits), k);
  const out: number[] = [];
  for (let i = 0; i < v; i++) if (logits[i] > threshold) out.push(i);
  for (let i = 0; i < v && out.length < k; i++) if (logits[i] === threshold) out.push(i);
  return out.sort(byValue);
}

/** The k-th largest value of a (1-based; no NaNs), by quickselect with a 3-way partition; reorders a. */
function kthLargest(a: Float32Array, k: number): number {
  const target = k - 1; // position in descending order
  let lo = 0;
  let hi = a.length - 1;
  const swap = (i: number, j: number) => {
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  };
  for (;;) {
    if (lo >= hi) return a[lo];
    const x = a[lo];
    const y = a[(lo + hi) >> 1];
    const z = a[hi];
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z)); // median of three
    // [lo, lt) > pivot, [lt, i) == pivot, (gt, hi] < pivot
    let lt = lo;
    let i = lo;
    let gt = hi;
    while (i <= gt) {
      if (a[i] > pivot) swap(lt++, i++);
      else if (a[i] < pivot) swap(i, gt--);
      else i++;
    }
    if (target < lt) hi = lt - 1;
    else if (target > gt) lo = gt + 1;
    else return pivot;
  }
}
