// grpoLossOp: the fused GRPO loss as an autograd op. Its gradient must be exactly the kernel's
// gradLogprobs times the upstream scalar (float32 products, compared bit for bit); the kernel's
// gradient itself is checked against central differences of a float64 loss written here from the
// definition, on small hand-made tensors; and loss.backward() must carry it through the log-prob
// ops to their leaves exactly as the kernels chained by hand do.
import { expectClose, expectScalarClose, finiteDifference, maxAbs } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  fusedLinearLogprobs,
  fusedLinearLogprobsBackward,
  type GrpoLossType,
  grpoLoss,
  grpoLossOp,
  lmHeadLogprobs,
  logprobsFromLogits,
  noGrad,
  scale,
  Tensor,
  tidy,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '../src/index.js';

// Three sequences of four tokens. log ratios lp - old stay >= 0.02 away from the clip edges
// log(0.8) = -0.223 and log(1.28) = 0.247, so central differences never straddle a kink.
const S = 3;
const T = 4;
const lp = Float32Array.of(-0.5, -1.2, -0.3, -2.0, -0.8, -0.1, -1.5, -0.7, -1.0, -0.4, -0.9, -0.2);
const logRatio = [0.1, -0.4, 0.35, 0, -0.05, 0.3, -0.3, 0.2, 0.15, -0.25, 0.05, -0.6];
const toRef = [0.2, -0.1, 0.05, 0.3, 0.1, -0.2, 0.4, -0.05, 0, 0.15, -0.3, 0.25];
const old = lp.map((x, i) => x - logRatio[i]);
const ref = lp.map((x, i) => x - toRef[i]);
const adv = Float32Array.of(1.2, -0.8, 0.5);
const mask = Float32Array.of(1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0);
const EPS_LOW = 0.2;
const EPS_HIGH = 0.28;
const BETA = 0.04;

interface Case {
  lossType: GrpoLossType;
  maxCompletionLength?: number;
  numItemsInBatch?: number;
}
const CASES: Case[] = [
  { lossType: 'grpo' },
  { lossType: 'bnpo' },
  { lossType: 'dr_grpo', maxCompletionLength: 6 },
  { lossType: 'dapo', numItemsInBatch: 20 },
];

/** The loss in float64 from its definition (k3 KL, the clipped surrogate), for any log-probs x. */
function lossF64(x: ArrayLike<number>, c: Case): number {
  let total = 0;
  let tokens = 0;
  let perSeqMean = 0;
  for (let s = 0; s < S; s++) {
    let seq = 0;
    let len = 0;
    for (let t = 0; t < T; t++) {
      const i = s * T + t;
      const ratio = Math.exp(x[i] - old[i]);
      const clipped = Math.min(Math.max(ratio, 1 - EPS_LOW), 1 + EPS_HIGH);
      const surr = Math.min(ratio * adv[s], clipped * adv[s]);
      const kl = Math.exp(ref[i] - x[i]) - (ref[i] - x[i]) - 1;
      seq += mask[i] * (-surr + BETA * kl);
      len += mask[i];
    }
    total += seq;
    tokens += len;
    perSeqMean += seq / Math.max(len, 1);
  }
  if (c.lossType === 'grpo') return perSeqMean / S;
  if (c.lossType === 'bnpo') return total / Math.max(tokens, 1);
  if (c.lossType === 'dr_grpo') return total / (S * (c.maxCompletionLength ?? T));
  return total / (c.numItemsInBatch ?? Math.max(tokens, 1));
}

const host = (c: Case) => ({
  logprobs: lp,
  oldLogprobs: old,
  refLogprobs: ref,
  advantages: adv,
  completionMask: mask,
  beta: BETA,
  epsilonLow: EPS_LOW,
  epsilonHigh: EPS_HIGH,
  ...c,
});

const tensors = (c: Case) => ({
  ...host(c),
  oldLogprobs: Tensor.from(old, [S, T]),
  refLogprobs: Tensor.from(ref, [S, T]),
  advantages: Tensor.from(adv, [S]),
  completionMask: Tensor.from(mask, [S, T]),
});

describe('grpoLossOp', () => {
  for (const c of CASES) {
    it(`${c.lossType}: the gradient is the kernel's gradLogprobs, times the upstream scalar`, () => {
      const want = grpoLoss(host(c));
      const kernelGrad = want.gradLogprobs as Float32Array;
      const got = tidy(() => {
        const x = Tensor.from(lp, [S, T], { requiresGrad: true });
        const { loss, stats } = grpoLossOp(x, tensors(c));
        loss.backward();
        const y = Tensor.from(lp, [S, T], { requiresGrad: true });
        // 0.3 is not a float32: the upstream gradient is fround(0.3), and each element one float32 product.
        scale(grpoLossOp(y, tensors(c)).loss, 0.3).backward();
        return {
          loss: loss.item(),
          shape: loss.shape,
          stats,
          grad: x.grad!.toFloat32Array(),
          scaled: y.grad!.toFloat32Array(),
        };
      });
      expect(got.shape).toEqual([]);
      expect(got.loss).toBe(Math.fround(want.loss));
      expect(got.stats).toEqual({ ...want.stats, loss: want.loss });
      expect(Array.from(got.grad)).toEqual(Array.from(kernelGrad));
      expect(Array.from(got.scaled)).toEqual(
        Array.from(kernelGrad, (g) => Math.fround(g * Math.fround(0.3))),
      );
    });

    it(`${c.lossType}: loss and gradient match a float64 definition and its central differences`, () => {
      const { loss, grad } = tidy(() => {
        const x = Tensor.from(lp, [S, T], { requiresGrad: true });
        const out = grpoLossOp(x, tensors(c));
        out.loss.backward();
        return { loss: out.stats.loss, grad: x.grad!.toFloat32Array() };
      });
      const x = Float64Array.from(lp);
      // float32 per-token math in the kernel, float64 sums: a few float32 roundings (6e-8 each) of
      // the loss (measured: 1.6e-7 relative for grpo).
      expectScalarClose(loss, lossF64(x, c), { rtol: 1e-6, atol: 1e-8 }, `${c.lossType} loss`);
      // h = 1e-4 in float64: truncation ~h^2 * f''' ~ 1e-9; the float32 gradient rounds each entry
      // to ~6e-8 relative. 1e-6 of the largest entry (~0.15) leaves a 10x margin over the measured
      // 1.4e-8 (grpo).
      const numeric = finiteDifference((v) => lossF64(v, c), x, 1e-4);
      expectClose(grad, numeric, { atol: 1e-6 * maxAbs(numeric) }, `${c.lossType} d loss / d logprobs`);
      // Masked tokens get no gradient; clipped ones (A > 0 above 1 + epsHigh, A < 0 below 1 - epsLow)
      // only the KL's.
      expect(Math.abs(grad[3])).toBe(0);
      expect(Math.abs(grad[2])).toBeLessThan(0.05 * maxAbs(grad));
    });
  }

  it('lossScale scales the loss and the gradient like the trainer once did in JS', () => {
    const c: Case = { lossType: 'grpo' };
    const plain = grpoLoss(host(c));
    const got = tidy(() => {
      const x = Tensor.from(lp, [S, T], { requiresGrad: true });
      const out = grpoLossOp(x, { ...tensors(c), lossScale: 1 / 3 });
      out.loss.backward();
      return { loss: out.stats.loss, grad: x.grad!.toFloat32Array() };
    });
    expect(got.loss).toBe(plain.loss * (1 / 3));
    expect(Array.from(got.grad)).toEqual(
      Array.from(plain.gradLogprobs as Float32Array, (g) => Math.fround(g / 3)),
    );
  });

  it('loss.backward() reaches the logits through logprobsFromLogits, as the kernels chained by hand', () => {
    const V = 11;
    const logits = Float32Array.from({ length: S * T * V }, (_, i) => Math.sin(i * 0.7) * 2);
    const targets = Int32Array.from({ length: S * T }, (_, i) => (i * 5) % V);
    const temperature = 0.9;
    const c: Case = { lossType: 'grpo' };
    const got = tidy(() => {
      const x = Tensor.from(logits, [S, T, V], { requiresGrad: true });
      const logprobs = logprobsFromLogits(x, Tensor.from(targets, [S, T]), { temperature });
      grpoLossOp(logprobs, tensors(c)).loss.backward();
      return x.grad!.toFloat32Array();
    });
    const common = { targets, vocabSize: V, temperature };
    const fwd = tokenLogprobs({ ...common, logits });
    const g = grpoLoss({ ...host(c), logprobs: fwd.logprobs }).gradLogprobs as Float32Array;
    const want = tokenLogprobsBackward({ ...common, logits, lse: fwd.lse, gradLogprobs: g }) as Float32Array;
    expect(maxAbs(got)).toBeGreaterThan(0);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('and the LM head and hidden states through lmHeadLogprobs (a frozen head gets no gradient)', () => {
    const H = 5;
    const V = 13;
    const hidden = Float32Array.from({ length: S * T * H }, (_, i) => Math.cos(i * 0.37));
    const weight = Float32Array.from({ length: V * H }, (_, i) => Math.sin(i * 0.91) * 0.5);
    const targets = Int32Array.from({ length: S * T }, (_, i) => (i * 7) % V);
    const c: Case = { lossType: 'bnpo' };
    const run = (trainHead: boolean) =>
      tidy(() => {
        const h = Tensor.from(hidden, [S, T, H], { requiresGrad: true });
        const w = Tensor.from(weight, [V, H], { requiresGrad: trainHead });
        const logprobs = lmHeadLogprobs(h, w, Tensor.from(targets, [S, T]), { chunkSize: 5 });
        grpoLossOp(logprobs, tensors(c)).loss.backward();
        return { h: h.grad!.toFloat32Array(), w: w.grad?.toFloat32Array() ?? null };
      });
    const common = { targets, hiddenSize: H, chunkSize: 5 };
    const fwd = fusedLinearLogprobs({ ...common, hidden, weight });
    const g = grpoLoss({ ...host(c), logprobs: fwd.logprobs }).gradLogprobs as Float32Array;
    const want = fusedLinearLogprobsBackward({ ...common, hidden, weight, lse: fwd.lse, gradLogprobs: g });
    const trained = run(true);
    expect(Array.from(trained.h)).toEqual(Array.from(want.gradHidden as Float32Array));
    expect(Array.from(trained.w!)).toEqual(Array.from(want.gradWeight as Float32Array));
    const frozen = run(false);
    expect(frozen.w).toBeNull();
    expect(Array.from(frozen.h)).toEqual(Array.from(want.gradHidden as Float32Array));
  });

  it('records nothing under noGrad or for log-probs that need no gradient', () => {
    const c: Case = { lossType: 'grpo' };
    const want = grpoLoss(host(c));
    tidy(() => {
      const x = Tensor.from(lp, [S, T], { requiresGrad: true });
      const quiet = noGrad(() => grpoLossOp(x, tensors(c)));
      expect(quiet.loss.requiresGrad).toBe(false);
      expect(quiet.loss.gradFn).toBeNull();
      expect(quiet.loss.item()).toBe(Math.fround(want.loss));
      const constant = grpoLossOp(Tensor.from(lp, [S, T]), tensors(c));
      expect(constant.loss.gradFn).toBeNull();
      expect(constant.stats.meanKl).toBe(want.stats.meanKl);
    });
  });

  it('errors name the op, the argument and the shapes', () => {
    const c: Case = { lossType: 'grpo' };
    tidy(() => {
      const x = Tensor.from(lp, [S, T]);
      const opts = tensors(c);
      expect(() => grpoLossOp(x.reshape([S * T]), opts)).toThrow(
        /grpoLossOp: logprobs \[12\] must be \[sequences, tokens\]/,
      );
      expect(() => grpoLossOp(x, { ...opts, advantages: Tensor.from(adv, [S, 1]) })).toThrow(
        /grpoLossOp: advantages \[3, 1\] must be \[3\] \(one per sequence of logprobs \[3, 4\]\)/,
      );
      expect(() => grpoLossOp(x, { ...opts, completionMask: Tensor.zeros([S, T + 1]) })).toThrow(
        /grpoLossOp: completionMask \[3, 5\] must have the shape of logprobs \[3, 4\]/,
      );
      expect(() => grpoLossOp(x, { ...opts, refLogprobs: Tensor.from(ref, [T, S]) })).toThrow(
        /grpoLossOp: refLogprobs \[4, 3\] must have the shape of logprobs \[3, 4\]/,
      );
      expect(() => grpoLossOp(x, { ...opts, advantages: Tensor.from(Int32Array.of(1, 0, 1), [S]) })).toThrow(
        /grpoLossOp: advantages has dtype int32, expected float32/,
      );
      expect(() => grpoLossOp(x, { ...opts, refLogprobs: undefined })).toThrow(
        /grpoLoss: refLogprobs is required when beta != 0/,
      );
      expect(() => grpoLossOp(x, { ...opts, lossScale: Number.POSITIVE_INFINITY })).toThrow(
        /grpoLoss: lossScale must be finite/,
      );
    });
  });
});
