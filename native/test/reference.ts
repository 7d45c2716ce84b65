// Float64 reference implementations used by the kernel tests: written independently of the C++
// kernels, straight from the definitions (the fixtures' README, section 4).

/** log_softmax(logits / T) at the targets, the log-sum-exp and the entropy, in float64. */
export function logprobsF64(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  vocab: number,
  temperature = 1,
) {
  const n = targets.length;
  const logprobs = new Float64Array(n);
  const lse = new Float64Array(n);
  const entropy = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < vocab; j++) max = Math.max(max, logits[i * vocab + j] / temperature);
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(logits[i * vocab + j] / temperature - max);
    lse[i] = max + Math.log(sum);
    let h = 0;
    for (let j = 0; j < vocab; j++) {
      const z = logits[i * vocab + j] / temperature;
      const p = Math.exp(z - lse[i]);
      if (p > 0) h -= p * (z - lse[i]);
    }
    entropy[i] = h;
    logprobs[i] = logits[i * vocab + targets[i]] / temperature - lse[i];
  }
  return { logprobs, lse, entropy };
}

/** Row-major float64 matmul: out[n, v] = hidden[n, h] @ weight[v, h]^T. */
export function linearF64(
  hidden: ArrayLike<number>,
  weight: ArrayLike<number>,
  n: number,
  h: number,
  v: number,
) {
  const out = new Float64Array(n * v);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < v; j++) {
      let s = 0;
      for (let k = 0; k < h; k++) s += hidden[i * h + k] * weight[j * h + k];
      out[i * v + j] = s;
    }
  return out;
}

export function flatten(rows: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(rows.reduce((s, r) => s + r.length, 0));
  let o = 0;
  for (const r of rows) {
    out.set(Array.from(r), o);
    o += r.length;
  }
  return out;
}
