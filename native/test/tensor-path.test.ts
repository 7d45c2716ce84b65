// The RL bindings given CPU tensors (tensor-likes over native Storage, at offsets) instead of typed
// arrays: the same kernels, so the results must equal the typed-array calls bit for bit, written
// into the caller's output tensors; plus the new options (count, lossScale, outLoss,
// outPerTokenLoss, needGradWeight) and the errors of the tensor path. The CUDA side of the same
// bindings is tested in cuda.test.ts.
import { randomNormal, seededRandom } from '@othink/testing';
import { afterEach, describe, expect, it } from 'vitest';
import * as native from '../index.js';
import { Arena, readF32 } from './tensors.js';

const arena = new Arena('cpu');
afterEach(() => arena.dispose());
const values = (x: unknown) => Array.from(x as Float32Array);

describe('RL kernels on CPU tensors', () => {
  const rand = seededRandom(21);
  const vocab = 37;
  const n = 6;
  const logits = randomNormal(n * vocab, rand, 2);
  const targets = Int32Array.of(3, -100, 36, 0, 17, 17);

  it('tokenLogprobs and its backward: tensors at offsets in, caller-owned tensors out', () => {
    const common = { vocabSize: vocab, ignoreIndex: -100, temperature: 0.8, withEntropy: true };
    const want = native.tokenLogprobs({ ...common, logits, targets });
    expect(want.count).toBe(5); // one target is ignoreIndex
    const outLogprobs = arena.zeros(n, 'float32', 1);
    const outLse = arena.zeros(n, 'float32', 2);
    const outEntropy = arena.zeros(n, 'float32', 3);
    const got = native.tokenLogprobs({
      ...common,
      logits: arena.tensor(logits, 'float32', 5),
      targets: arena.tensor(targets, 'int32', 7),
      outLogprobs,
      outLse,
      outEntropy,
    });
    expect(got.logprobs).toBe(outLogprobs);
    expect(got.lse).toBe(outLse);
    expect(got.entropy).toBe(outEntropy);
    expect(got.count).toBe(5);
    expect(values(readF32(outLogprobs))).toEqual(values(want.logprobs));
    expect(values(readF32(outLse))).toEqual(values(want.lse));
    expect(values(readF32(outEntropy))).toEqual(values(want.entropy));

    const gradLogprobs = randomNormal(n, rand);
    const gradEntropy = randomNormal(n, rand, 0.1);
    const back = { ...common, lse: want.lse, entropy: want.entropy, gradLogprobs, gradEntropy };
    const ref = native.tokenLogprobsBackward({ ...back, logits, targets }) as Float32Array;
    const out = arena.zeros(n * vocab, 'float32', 3);
    const tensorBack = {
      ...common,
      targets: arena.tensor(targets),
      lse: outLse,
      entropy: outEntropy,
      gradLogprobs: arena.tensor(gradLogprobs, 'float32', 1),
      gradEntropy: arena.tensor(gradEntropy),
    };
    expect(native.tokenLogprobsBackward({ ...tensorBack, logits: arena.tensor(logits), out })).toBe(out);
    expect(values(readF32(out))).toEqual(values(ref));
    // In place: the gradient replaces the logits tensor's values.
    const inPlace = arena.tensor(logits, 'float32', 2);
    expect(native.tokenLogprobsBackward({ ...tensorBack, logits: inPlace, inPlace: true })).toBe(inPlace);
    expect(values(readF32(inPlace))).toEqual(values(ref));
  });

  it('fusedLinearLogprobs and its backward; needGradWeight: false skips dW', () => {
    const h = 5;
    const hidden = randomNormal(n * h, rand);
    const weight = randomNormal(vocab * h, rand, 0.5);
    const common = { hiddenSize: h, chunkSize: 4, ignoreIndex: -100 };
    const want = native.fusedLinearLogprobs({ ...common, hidden, weight, targets });
    expect(want.count).toBe(5);
    const th = arena.tensor(hidden, 'float32', 1);
    const tw = arena.tensor(weight, 'float32', 3);
    const tt = arena.tensor(targets);
    const outLogprobs = arena.zeros(n);
    const outLse = arena.zeros(n);
    const got = native.fusedLinearLogprobs({
      ...common,
      hidden: th,
      weight: tw,
      targets: tt,
      outLogprobs,
      outLse,
    });
    expect(got.count).toBe(5);
    expect(values(readF32(outLogprobs))).toEqual(values(want.logprobs));
    expect(values(readF32(outLse))).toEqual(values(want.lse));

    const gradLogprobs = randomNormal(n, rand);
    const start = randomNormal(vocab * h, rand, 0.01); // gradWeight is accumulated into
    const ref = native.fusedLinearLogprobsBackward({
      ...common,
      hidden,
      weight,
      targets,
      lse: want.lse,
      gradLogprobs,
      gradWeight: start.slice(),
    });
    const gradWeight = arena.tensor(start, 'float32', 1);
    const gradHidden = arena.zeros(n * h, 'float32', 2);
    const tensorBack = {
      ...common,
      hidden: th,
      weight: tw,
      targets: tt,
      lse: outLse,
      gradLogprobs: arena.tensor(gradLogprobs),
    };
    const out = native.fusedLinearLogprobsBackward({ ...tensorBack, gradWeight, gradHidden });
    expect(out.gradWeight).toBe(gradWeight);
    expect(out.gradHidden).toBe(gradHidden);
    expect(values(readF32(gradWeight))).toEqual(values(ref.gradWeight));
    expect(values(readF32(gradHidden))).toEqual(values(ref.gradHidden));

    const frozen = arena.zeros(n * h);
    const noWeight = native.fusedLinearLogprobsBackward({
      ...tensorBack,
      gradHidden: frozen,
      needGradWeight: false,
    });
    expect(noWeight.gradWeight).toBeUndefined();
    expect(values(readF32(frozen))).toEqual(values(ref.gradHidden));
  });

  it('groupAdvantages, klPenalty and grpoLoss on tensors equal the typed-array calls', () => {
    const rewards = Float32Array.of(0, 1, 1, 0, 2, 2, 0.5, 3, -1);
    const want = native.groupAdvantages({ rewards, groupSize: 3, scale: 'batch' });
    const out = arena.zeros(9);
    const outGroupMeans = arena.zeros(3);
    const outGroupStds = arena.zeros(3, 'float32', 1);
    const got = native.groupAdvantages({
      rewards: arena.tensor(rewards, 'float32', 3),
      groupSize: 3,
      scale: 'batch',
      out,
      outGroupMeans,
      outGroupStds,
    });
    expect(got.advantages).toBe(out);
    expect(values(readF32(out))).toEqual(values(want.advantages));
    expect(values(readF32(outGroupMeans))).toEqual(values(want.groupMeans));
    expect(values(readF32(outGroupStds))).toEqual(values(want.groupStds));

    const logprobs = randomNormal(24, rand).map((x) => -Math.abs(x));
    const refLogprobs = logprobs.map((x) => x + 0.3 * (rand() * 2 - 1));
    const kl = native.klPenalty({ logprobs, refLogprobs, estimator: 'k2', clamp: 0.05 });
    const outValues = arena.zeros(24);
    const outGrads = arena.zeros(24);
    native.klPenalty({
      logprobs: arena.tensor(logprobs, 'float32', 1),
      refLogprobs: arena.tensor(refLogprobs),
      estimator: 'k2',
      clamp: 0.05,
      outValues,
      outGrads,
    });
    expect(values(readF32(outValues))).toEqual(values(kl.values));
    expect(values(readF32(outGrads))).toEqual(values(kl.grads));

    const g = {
      logprobs,
      oldLogprobs: logprobs.map((x) => x + 0.2 * (rand() * 2 - 1)),
      refLogprobs,
      advantages: Float32Array.of(1.5, -0.5, 0.25),
      completionMask: Float32Array.from({ length: 24 }, (_, i) => (i % 8 < 6 - (i >> 3) ? 1 : 0)),
      beta: 0.04,
      epsilonHigh: 0.28,
      withPerTokenLoss: true,
    };
    const ref = native.grpoLoss(g);
    const outGrad = arena.zeros(24, 'float32', 1);
    const outPerTokenLoss = arena.zeros(24);
    const outLoss = arena.zeros(1, 'float32', 2);
    const res = native.grpoLoss({
      ...g,
      logprobs: arena.tensor(g.logprobs, 'float32', 3),
      oldLogprobs: arena.tensor(g.oldLogprobs),
      refLogprobs: arena.tensor(g.refLogprobs),
      advantages: arena.tensor(g.advantages),
      completionMask: arena.tensor(g.completionMask),
      outGrad,
      outPerTokenLoss,
      outLoss,
    });
    expect(res.loss).toBe(ref.loss);
    expect(res.stats).toEqual(ref.stats);
    expect(res.gradLogprobs).toBe(outGrad);
    expect(res.perTokenLoss).toBe(outPerTokenLoss);
    expect(values(readF32(outGrad))).toEqual(values(ref.gradLogprobs));
    expect(values(readF32(outPerTokenLoss))).toEqual(values(ref.perTokenLoss));
    expect(readF32(outLoss)[0]).toBe(Math.fround(ref.loss));
  });

  it('grpoLoss lossScale: the loss times the scale, the gradient scaled in float64 and rounded once', () => {
    const logprobs = randomNormal(40, rand).map((x) => -Math.abs(x));
    const g = {
      logprobs,
      oldLogprobs: logprobs.map((x) => x + 0.3 * (rand() * 2 - 1)),
      advantages: Float32Array.of(1, -2, 0.5, 0.7),
      completionMask: new Float32Array(40).fill(1),
      beta: 0,
      lossType: 'bnpo' as const,
    };
    const plain = native.grpoLoss(g);
    const scale = 1 / 3; // not a power of two: float32 * fround(1/3) would round differently
    const scaled = native.grpoLoss({ ...g, lossScale: scale });
    expect(scaled.loss).toBe(plain.loss * scale);
    // What a trainer scaling the unscaled float32 gradient in JS gets, bit for bit.
    expect(values(scaled.gradLogprobs)).toEqual(
      values((plain.gradLogprobs as Float32Array).map((x) => x * scale)),
    );
    expect(scaled.stats).toEqual(plain.stats);
    expect(() => native.grpoLoss({ ...g, lossScale: Number.NaN })).toThrow(
      /grpoLoss: lossScale must be finite/,
    );
  });

  it('errors of the tensor path name the function and the argument', () => {
    const t = arena.tensor(targets);
    const lp = { logits: arena.tensor(logits), targets: t, vocabSize: vocab, ignoreIndex: -100 };
    expect(() =>
      native.tokenLogprobs({ ...lp, targets: arena.tensor(Int32Array.of(1, 2, 3, 40, 5, 6)) }),
    ).toThrow(
      /tokenLogprobs: targets\[3\] = 40 is outside the vocabulary \[0, 37\) and is not ignoreIndex = -100/,
    );
    expect(() => native.tokenLogprobs({ ...lp, logits: arena.zeros(n * vocab, 'bfloat16') })).toThrow(
      /tokenLogprobs: logits is a bfloat16 tensor on cpu: the CPU kernels take float32/,
    );
    expect(() => native.tokenLogprobs({ ...lp, logits: arena.tensor(Int32Array.from(logits)) })).toThrow(
      /tokenLogprobs: logits must have dtype float32 \(got int32\)/,
    );
    expect(() => native.tokenLogprobs({ ...lp, outLse: arena.zeros(n + 1) })).toThrow(
      /tokenLogprobs: outLse has 7 elements; expected 6 \(one per target\)/,
    );
    const disposed = arena.zeros(n);
    disposed.storage.dispose();
    expect(() => native.tokenLogprobs({ ...lp, outLogprobs: disposed })).toThrow(
      /tokenLogprobs: outLogprobs: the tensor's storage was disposed/,
    );
    const fl = {
      hidden: arena.zeros(n * 4),
      weight: arena.zeros(8 * 4),
      targets: arena.tensor(Int32Array.of(0, 1, 2, 3, 4, 5)),
      hiddenSize: 4,
    };
    expect(() => native.fusedLinearLogprobs({ ...fl, hidden: arena.zeros(n * 4, 'bfloat16') })).toThrow(
      /fusedLinearLogprobs: hidden is a bfloat16 tensor on cpu/,
    );
    expect(() =>
      native.fusedLinearLogprobsBackward({
        ...fl,
        lse: arena.zeros(n),
        gradLogprobs: arena.zeros(n),
        gradWeight: arena.zeros(31),
      }),
    ).toThrow(
      /fusedLinearLogprobsBackward: gradWeight has 31 elements; expected 32 \(the shape of weight; accumulated into/,
    );
    const rewards = arena.tensor(Float32Array.of(1, 2, Number.POSITIVE_INFINITY, 0));
    expect(() => native.groupAdvantages({ rewards, groupSize: 2 })).toThrow(
      /groupAdvantages: rewards\[2\] is infinite/,
    );
    const grpo = {
      logprobs: arena.zeros(8),
      advantages: arena.zeros(2),
      completionMask: arena.zeros(8),
      beta: 0,
    };
    expect(() => native.grpoLoss({ ...grpo, outLoss: arena.zeros(2) })).toThrow(
      /grpoLoss: outLoss has 2 elements; expected 1 \(one float32: the loss\)/,
    );
    expect(() =>
      native.grpoLoss({ ...grpo, outPerTokenLoss: arena.zeros(7), withPerTokenLoss: true }),
    ).toThrow(/grpoLoss: outPerTokenLoss has 7 elements; expected 8/);
    expect(() => native.klPenalty({ logprobs: arena.zeros(3), refLogprobs: arena.zeros(4) })).toThrow(
      /klPenalty: refLogprobs has 4 elements; expected 3 \(the length of logprobs\)/,
    );
  });
});
