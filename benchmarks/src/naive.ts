/**
 * Plain TypeScript implementations of the kernels' math: the "what you would write without the
 * addon" baseline of the benchmarks. Written the way a competent TS programmer would (typed arrays,
 * simple loops, `Math.exp`, the usual max-subtract for the softmax), with no tricks either way.
 */

export interface NaiveLogprobs {
  logprobs: Float32Array;
  lse: Float32Array;
}

/** log_softmax(logits / T)[target] per row of `[N, V]` row-major logits. */
export function logSoftmaxGather(
  logits: Float32Array,
  targets: Int32Array,
  vocab: number,
  temperature = 1,
): NaiveLogprobs {
  const n = targets.length;
  const invT = 1 / temperature;
  const logprobs = new Float32Array(n);
  const lse = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const off = i * vocab;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) {
      const z = logits[off + j] * invT;
      if (z > max) max = z;
    }
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(logits[off + j] * invT - max);
    const l = max + Math.log(sum);
    lse[i] = l;
    logprobs[i] = logits[off + targets[i]] * invT - l;
  }
  return { logprobs, lse };
}

/** d/dlogits of `sum_i g_i * logprob_i`: `g_i / T * (onehot(target_i) - softmax(logits_i / T))`. */
export function logSoftmaxGatherBackward(
  logits: Float32Array,
  targets: Int32Array,
  lse: Float32Array,
  gradLogprobs: Float32Array,
  vocab: number,
  temperature = 1,
): Float32Array {
  const n = targets.length;
  const invT = 1 / temperature;
  const dlogits = new Float32Array(n * vocab);
  for (let i = 0; i < n; i++) {
    const off = i * vocab;
    const g = gradLogprobs[i] * invT;
    const l = lse[i];
    for (let j = 0; j < vocab; j++) dlogits[off + j] = -g * Math.exp(logits[off + j] * invT - l);
    dlogits[off + targets[i]] += g;
  }
  return dlogits;
}

export interface NaiveAdvantages {
  advantages: Float32Array;
  groupMeans: Float32Array;
  groupStds: Float32Array;
}

/** GRPO advantages `(r - mean_g) / (std_g + eps)` with the unbiased (n - 1) std of each group. */
export function groupAdvantages(rewards: Float32Array, groupSize: number, eps = 1e-4): NaiveAdvantages {
  const groups = rewards.length / groupSize;
  const advantages = new Float32Array(rewards.length);
  const groupMeans = new Float32Array(groups);
  const groupStds = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    const off = g * groupSize;
    let sum = 0;
    for (let i = 0; i < groupSize; i++) sum += rewards[off + i];
    const mean = sum / groupSize;
    let ss = 0;
    for (let i = 0; i < groupSize; i++) {
      const d = rewards[off + i] - mean;
      ss += d * d;
    }
    const std = groupSize > 1 ? Math.sqrt(ss / (groupSize - 1)) : 0;
    groupMeans[g] = mean;
    groupStds[g] = std;
    for (let i = 0; i < groupSize; i++) advantages[off + i] = (rewards[off + i] - mean) / (std + eps);
  }
  return { advantages, groupMeans, groupStds };
}

export interface NaiveKl {
  values: Float32Array;
  grads: Float32Array;
}

/** k3 KL estimator `exp(ref - logp) - (ref - logp) - 1` and its derivative `1 - exp(ref - logp)`. */
export function klK3(logprobs: Float32Array, refLogprobs: Float32Array): NaiveKl {
  const n = logprobs.length;
  const values = new Float32Array(n);
  const grads = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = refLogprobs[i] - logprobs[i];
    const e = Math.exp(r);
    values[i] = e - r - 1;
    grads[i] = 1 - e;
  }
  return { values, grads };
}

export interface NaiveGrpoInput {
  /** `[S, T]` policy log-probs. */
  logprobs: Float32Array;
  oldLogprobs: Float32Array;
  refLogprobs: Float32Array;
  /** `[S]` */
  advantages: Float32Array;
  /** `[S, T]` */
  completionMask: Float32Array;
  beta: number;
  epsilonLow?: number;
  epsilonHigh?: number;
}

export interface NaiveGrpoResult {
  loss: number;
  gradLogprobs: Float32Array;
  meanKl: number;
  clipRatioLow: number;
  clipRatioHigh: number;
  meanRatio: number;
  tokens: number;
}

/**
 * The GRPO loss (`lossType: 'grpo'`, k3 KL): per token `-min(r A, clip(r) A) + beta KL`, averaged
 * over each sequence's unmasked tokens, then over the sequences; with its gradient w.r.t. the
 * log-probs and the statistics the kernel returns.
 */
export function grpoLoss(o: NaiveGrpoInput): NaiveGrpoResult {
  const { logprobs, oldLogprobs, refLogprobs, advantages, completionMask: mask, beta } = o;
  const epsLow = o.epsilonLow ?? 0.2;
  const epsHigh = o.epsilonHigh ?? epsLow;
  const S = advantages.length;
  const T = logprobs.length / S;
  const lo = 1 - epsLow;
  const hi = 1 + epsHigh;
  const grad = new Float32Array(S * T);
  let loss = 0;
  let klSum = 0;
  let tokens = 0;
  let nLow = 0;
  let nHigh = 0;
  let ratioSum = 0;
  for (let s = 0; s < S; s++) {
    const off = s * T;
    let len = 0;
    for (let t = 0; t < T; t++) len += mask[off + t];
    const w = 1 / (Math.max(len, 1) * S);
    const a = advantages[s];
    let seqKl = 0;
    for (let t = 0; t < T; t++) {
      const i = off + t;
      const m = mask[i];
      const ratio = Math.exp(logprobs[i] - oldLogprobs[i]);
      const clipped = Math.min(Math.max(ratio, lo), hi);
      const surr = Math.min(ratio * a, clipped * a);
      const clipLow = a < 0 && ratio < lo;
      const clipHigh = a > 0 && ratio > hi;
      const r = refLogprobs[i] - logprobs[i];
      const e = Math.exp(r);
      const kl = e - r - 1;
      loss += w * m * (-surr + beta * kl);
      const gSurr = clipLow || clipHigh ? 0 : -a * ratio;
      grad[i] = w * m * (gSurr + beta * (1 - e));
      seqKl += m * kl;
      if (clipLow) nLow += m;
      if (clipHigh) nHigh += m;
      ratioSum += m * ratio;
    }
    klSum += seqKl / Math.max(len, 1);
    tokens += len;
  }
  const denom = Math.max(tokens, 1);
  return {
    loss,
    gradLogprobs: grad,
    meanKl: klSum / S,
    clipRatioLow: nLow / denom,
    clipRatioHigh: nHigh / denom,
    meanRatio: ratioSum / denom,
    tokens,
  };
}
