// The RL kernels on CUDA tensors (tensor-likes over `new Storage(bytes, 'cuda')`, as @othink/core
// passes them) against the same bindings on host arrays (the CPU kernels). Needs a CUDA build and a
// GPU: describeGpu skips it elsewhere with the reason, and fails it under OTHINK_REQUIRE_GPU=1.
// Sizes: Qwen2-VL's vocabulary V = 151,936, rows off 16-byte boundaries (odd V, tensors at an
// offset: the kernels' unaligned head and tail), millions of rows / tokens / rewards (grid-stride
// loops, one block per row or sequence, 64-bit indexing), groups of 2 to 1,000,000.
// Tolerances, and why:
// - float32 log-probs / entropy: both sides sum float32 exponentials in different orders (the CPU
//   in float64 per block), __expf (ex2.approx, a few ulp) vs the CPU's polynomial: 1e-5 relative +
//   1e-5 absolute; lse: 1e-6 relative + 1e-5 absolute.
// - bfloat16 inputs are widened exactly to float32 for the CPU reference, so the forward differs
//   only in summation order: the float32 tolerances.
// - dlogits: p = exp(z - lse) per element (a few ulp) against the row's largest gradient: 1e-4
//   relative + 1e-6 * max|dlogits|; written in bfloat16 (in place, or a bfloat16 `out`), one more
//   rounding of 2^-9 relative: 4e-3 relative.
// - fused linear: cuBLAS in true float32 (no TF32) vs the CPU sgemm, float32 accumulation over H in
//   other orders: log-probs 1e-5 (float32) / 1e-4 (bfloat16 inputs); gradients 1e-4 relative +
//   1e-5 * max. The bfloat16 backward rounds dlogits to bfloat16 before its GEMMs (as a bf16 LM head
//   does): 1e-2 * max|grad|.
// - advantages: float64 moments on both sides; the CPU divides in float32, the GPU in float64, so
//   results differ by a rounding or two: 1e-6 relative + 1e-7 absolute.
// - KL and the GRPO loss: the same float32 formulas (expf within 2 ulp of the CPU's exp): 1e-5
//   relative; sums over millions of tokens are float64 on both sides (per-thread on the GPU, per
//   16-lane vector then float64 on the CPU): 1e-5 relative for the loss and statistics.
import {
  describeGpu,
  expectClose,
  expectScalarClose,
  maxAbs,
  randomNormal,
  seededRandom,
} from '@othink/testing';
import { afterEach, expect, it } from 'vitest';
import type { GrpoLossOptions, KlEstimator } from '../index.js';
import * as native from '../index.js';
import { Arena, readBf16, readF32, toBf16 } from './tensors.js';

const LOGPROB_TOL = { rtol: 1e-5, atol: 1e-5 };
const LSE_TOL = { rtol: 1e-6, atol: 1e-5 };
const gradTol = (ref: Float32Array, rtol = 1e-4, scale = 1e-6) => ({ rtol, atol: scale * maxAbs(ref) });

describeGpu(native, 'RL kernels on CUDA tensors vs their CPU twins', () => {
  const gpu = new Arena('cuda');
  afterEach(() => gpu.dispose());
  // The suite's body is collected even where it is skipped: ask the device only inside tests.
  const info = () => native.cuda!.deviceInfo();
  /** A float32 (or bfloat16) CUDA tensor of the values, `offset` elements into its storage. */
  const f32 = (x: Float32Array, offset = 0) => gpu.tensor(x, 'float32', offset);
  const i32 = (x: Int32Array, offset = 0) => gpu.tensor(x, 'int32', offset);
  const bf16 = (x: Float32Array, offset = 0) => gpu.tensor(toBf16(x).bits, 'bfloat16', offset);
  const zeros = (n: number, offset = 0) => gpu.zeros(n, 'float32', offset);

  it('deviceInfo describes the GPU', () => {
    const d = info();
    expect(d.deviceCount).toBeGreaterThan(0);
    expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
    expect(d.runtimeVersion).toBeGreaterThan(0);
  });

  // [V, N]: 1001 and 4099 put rows off 16-byte boundaries; 151,936 is Qwen2-VL's vocabulary.
  const SIZES: [number, number][] = [
    [1000, 7],
    [1001, 5],
    [4099, 3],
    [32000, 5],
    [151936, 64],
  ];
  for (const [vocab, n] of SIZES) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`token log-probs, ${dtype}, V = ${vocab}, N = ${n}: forward and backward`, () => {
        const rand = seededRandom(vocab + n);
        const raw = randomNormal(n * vocab, rand, 3);
        const logits = dtype === 'bfloat16' ? toBf16(raw).values : raw; // the device input's exact values
        const targets = Int32Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab);
        targets[1] = -100; // an ignored row
        const dLogits = dtype === 'bfloat16' ? bf16(raw, 3) : f32(raw, 1);
        const dTargets = i32(targets, 1);
        for (const temperature of [1, 0.7]) {
          const common = { vocabSize: vocab, temperature, withEntropy: true, ignoreIndex: -100 };
          const want = native.tokenLogprobs({ ...common, logits, targets });
          const out = { outLogprobs: zeros(n, 1), outLse: zeros(n), outEntropy: zeros(n, 2) };
          const got = native.tokenLogprobs({ ...common, logits: dLogits, targets: dTargets, ...out });
          expect(got.logprobs).toBe(out.outLogprobs);
          expect(got.count).toBe(n - 1);
          expectClose(readF32(out.outLogprobs), want.logprobs, LOGPROB_TOL, `logprobs T=${temperature}`);
          expectClose(readF32(out.outLse), want.lse, LSE_TOL, `lse T=${temperature}`);
          expectClose(readF32(out.outEntropy), want.entropy!, LOGPROB_TOL, `entropy T=${temperature}`);
          expect(readF32(out.outLogprobs)[1]).toBe(0);

          const gradLogprobs = randomNormal(n, rand);
          const gradEntropy = randomNormal(n, rand, 0.1);
          const back = { ...common, lse: want.lse, entropy: want.entropy, gradLogprobs, gradEntropy };
          const ref = native.tokenLogprobsBackward({ ...back, logits, targets }) as Float32Array;
          // The CPU's lse and entropy on both sides: the comparison isolates the backward.
          const onDevice = {
            ...common,
            targets: dTargets,
            lse: f32(want.lse, 1),
            entropy: f32(want.entropy!),
            gradLogprobs: f32(gradLogprobs),
            gradEntropy: f32(gradEntropy, 1),
          };
          const dlogits = zeros(n * vocab, 1);
          expect(native.tokenLogprobsBackward({ ...onDevice, logits: dLogits, out: dlogits })).toBe(dlogits);
          expectClose(readF32(dlogits), ref, gradTol(ref), `dlogits T=${temperature}`);
          const d = readF32(dlogits);
          expect(maxAbs(d.subarray(vocab, 2 * vocab))).toBe(0); // the ignored row
          // A bfloat16 `out`, and in place (the gradient in the logits' dtype).
          const dBf16 = gpu.zeros(n * vocab, 'bfloat16', 5);
          native.tokenLogprobsBackward({ ...onDevice, logits: dLogits, out: dBf16 });
          expectClose(readBf16(dBf16), ref, gradTol(ref, 4e-3), `dlogits into bfloat16 T=${temperature}`);
          const copy = dtype === 'bfloat16' ? bf16(raw, 1) : f32(raw, 2);
          expect(native.tokenLogprobsBackward({ ...onDevice, logits: copy, inPlace: true })).toBe(copy);
          if (dtype === 'bfloat16')
            expectClose(readBf16(copy), ref, gradTol(ref, 4e-3), 'dlogits in place (bf16)');
          else expect(Array.from(readF32(copy))).toEqual(Array.from(d));
        }
      });
    }
  }

  it('token log-probs over two million rows (grid-stride rows, 64-bit offsets into the logits)', () => {
    const vocab = 9;
    const n = 2_000_003;
    const rand = seededRandom(77);
    const logits = randomNormal(n * vocab, rand, 2);
    const targets = Int32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? -1 : (i * 31) % vocab));
    const common = { vocabSize: vocab, ignoreIndex: -1 };
    const want = native.tokenLogprobs({ ...common, logits, targets });
    const dLogits = f32(logits, 1);
    const dTargets = i32(targets);
    const outLogprobs = zeros(n);
    const outLse = zeros(n);
    const got = native.tokenLogprobs({ ...common, logits: dLogits, targets: dTargets, outLogprobs, outLse });
    expect(got.count).toBe(want.count);
    expectClose(readF32(outLogprobs), want.logprobs, LOGPROB_TOL, 'logprobs');
    expectClose(readF32(outLse), want.lse, LSE_TOL, 'lse');
    const gradLogprobs = randomNormal(n, rand);
    const ref = native.tokenLogprobsBackward({
      ...common,
      logits,
      targets,
      lse: want.lse,
      gradLogprobs,
    }) as Float32Array;
    const out = zeros(n * vocab);
    native.tokenLogprobsBackward({
      ...common,
      logits: dLogits,
      targets: dTargets,
      lse: f32(want.lse),
      gradLogprobs: f32(gradLogprobs),
      out,
    });
    expectClose(readF32(out), ref, gradTol(ref), 'dlogits');
  });

  it('targets are checked on the device: the first bad one is named, over three million', () => {
    const n = 3_000_001;
    const targets = Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? -100 : i % 4));
    targets[2_999_991] = 4;
    targets[2_999_998] = -7;
    const opts = {
      logits: zeros(n * 4),
      targets: i32(targets, 3),
      vocabSize: 4,
      ignoreIndex: -100,
      outLogprobs: zeros(n),
      outLse: zeros(n),
    };
    expect(() => native.tokenLogprobs(opts)).toThrow(
      /tokenLogprobs: targets\[2999991\] = 4 is outside the vocabulary \[0, 4\) and is not ignoreIndex = -100/,
    );
    targets[2_999_991] = 3;
    targets[2_999_998] = 1;
    const ok = native.tokenLogprobs({ ...opts, targets: i32(targets) });
    expect(ok.count).toBe(targets.filter((t) => t !== -100).length); // counted on the device
  });

  it('token log-probs: -inf (masked) logits, log-probs only', () => {
    const vocab = 5000;
    const logits = new Float32Array(2 * vocab).fill(Number.NEGATIVE_INFINITY);
    logits[4500] = 1;
    logits[4999] = 2;
    logits.set(randomNormal(vocab, seededRandom(3)), vocab);
    const targets = Int32Array.of(4999, 17);
    const want = native.tokenLogprobs({ logits, targets, vocabSize: vocab, withEntropy: true });
    const out = { outLogprobs: zeros(2), outLse: zeros(2), outEntropy: zeros(2) };
    native.tokenLogprobs({
      logits: f32(logits),
      targets: i32(targets),
      vocabSize: vocab,
      withEntropy: true,
      ...out,
    });
    expectClose(readF32(out.outLogprobs), want.logprobs, LOGPROB_TOL, 'logprobs');
    expectClose(readF32(out.outEntropy), want.entropy!, LOGPROB_TOL, 'entropy');
    const gradLogprobs = Float32Array.of(1, -0.5);
    const ref = native.tokenLogprobsBackward({
      logits,
      targets,
      vocabSize: vocab,
      lse: want.lse,
      gradLogprobs,
    }) as Float32Array;
    const dlogits = zeros(2 * vocab);
    native.tokenLogprobsBackward({
      logits: f32(logits),
      targets: i32(targets),
      vocabSize: vocab,
      lse: f32(want.lse),
      gradLogprobs: f32(gradLogprobs),
      out: dlogits,
    });
    expectClose(readF32(dlogits), ref, gradTol(ref), 'dlogits');
  });

  const H = 64;
  for (const [vocab, n, chunkSize] of [
    [1000, 7, 2],
    [32000, 5, 2],
    [151936, 64, 16],
    [151936, 64, undefined],
  ] as [number, number, number | undefined][]) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`fused linear log-probs (cuBLAS), ${dtype}, V = ${vocab}, N = ${n}, H = ${H}, chunk ${chunkSize ?? 'default'}`, () => {
        if (!info().cublas) {
          const o = {
            hidden: zeros(4),
            weight: zeros(8),
            targets: i32(Int32Array.of(1)),
            hiddenSize: 4,
            outLogprobs: zeros(1),
            outLse: zeros(1),
          };
          expect(() => native.fusedLinearLogprobs(o)).toThrow(
            /fusedLinearLogprobs: the fused linear kernels need cuBLAS/,
          );
          return;
        }
        const rand = seededRandom(vocab * 3 + n);
        const h32 = randomNormal(n * H, rand);
        const w32 = randomNormal(vocab * H, rand, 0.2);
        const bfloat = dtype === 'bfloat16';
        const hidden = bfloat ? toBf16(h32).values : h32;
        const weight = bfloat ? toBf16(w32).values : w32;
        const targets = Int32Array.from({ length: n }, (_, i) => (i * 104729 + 5) % vocab);
        targets[n - 1] = -1;
        const common = { hiddenSize: H, chunkSize, withEntropy: true, ignoreIndex: -1, temperature: 0.9 };
        const device = {
          ...common,
          hidden: bfloat ? bf16(h32, 1) : f32(h32, 1),
          weight: bfloat ? bf16(w32) : f32(w32, 3),
          targets: i32(targets),
        };
        const want = native.fusedLinearLogprobs({ ...common, hidden, weight, targets });
        const out = { outLogprobs: zeros(n), outLse: zeros(n), outEntropy: zeros(n) };
        expect(native.fusedLinearLogprobs({ ...device, ...out }).count).toBe(n - 1);
        const tol = bfloat ? { rtol: 1e-4, atol: 1e-4 } : LOGPROB_TOL;
        expectClose(readF32(out.outLogprobs), want.logprobs, tol, 'logprobs');
        expectClose(readF32(out.outLse), want.lse, tol, 'lse');
        expectClose(readF32(out.outEntropy), want.entropy!, tol, 'entropy');

        const gradLogprobs = randomNormal(n, rand);
        const start = randomNormal(vocab * H, rand, 0.01); // gradWeight is accumulated into
        const ref = native.fusedLinearLogprobsBackward({
          ...common,
          hidden,
          weight,
          targets,
          lse: want.lse,
          entropy: want.entropy,
          gradLogprobs,
          gradWeight: start.slice(),
        });
        const gradWeight = f32(start, 1);
        const gradHidden = zeros(n * H);
        const grads = { lse: f32(want.lse), entropy: f32(want.entropy!), gradLogprobs: f32(gradLogprobs) };
        const got = native.fusedLinearLogprobsBackward({ ...device, ...grads, gradWeight, gradHidden });
        expect(got.gradWeight).toBe(gradWeight);
        const scale = bfloat ? 1e-2 : 1e-5;
        const refHidden = ref.gradHidden as Float32Array;
        expectClose(readF32(gradHidden), refHidden, gradTol(refHidden, 1e-4, scale), 'gradHidden');
        // The accumulated part: the starting values are the same on both sides.
        const dw = readF32(gradWeight).map((x, i) => x - start[i]);
        const refDw = (ref.gradWeight as Float32Array).map((x, i) => x - start[i]);
        expectClose(dw, refDw, gradTol(refDw, 1e-4, scale), 'gradWeight');
        // A frozen head: dHidden alone, the same values.
        const only = zeros(n * H, 2);
        const frozen = native.fusedLinearLogprobsBackward({
          ...device,
          ...grads,
          gradHidden: only,
          needGradWeight: false,
        });
        expect(frozen.gradWeight).toBeUndefined();
        expectClose(readF32(only), readF32(gradHidden), { atol: 0 }, 'gradHidden without dW');
      });
    }
  }

  it('group advantages: group / batch / none, groups of 2 to 1,000,000, non-finite rewards left out', () => {
    const rand = seededRandom(11);
    const tol = { rtol: 1e-6, atol: 1e-7 };
    for (const [groupSize, groups] of [
      [2, 31],
      [7, 31],
      [8, 31],
      [16, 65536],
      [64, 31],
      [300, 31],
      [1_000_000, 1],
    ]) {
      const n = groupSize * groups;
      const rewards = randomNormal(n, rand, 2);
      for (let i = 0; i < n; i += 5) rewards[i] = Math.round(rewards[i]); // ties, like 0/1 rewards
      const dRewards = f32(rewards, 1);
      for (const scale of ['group', 'batch', 'none'] as const) {
        const want = native.groupAdvantages({ rewards, groupSize, scale });
        const out = { out: zeros(n), outGroupMeans: zeros(groups, 1), outGroupStds: zeros(groups) };
        const got = native.groupAdvantages({ rewards: dRewards, groupSize, scale, ...out });
        expect(got.advantages).toBe(out.out);
        expectClose(
          readF32(out.out),
          want.advantages as Float32Array,
          tol,
          `advantages ${scale} G=${groupSize}`,
        );
        expectClose(
          readF32(out.outGroupMeans),
          want.groupMeans as Float32Array,
          tol,
          `means ${scale} G=${groupSize}`,
        );
        expectClose(
          readF32(out.outGroupStds),
          want.groupStds as Float32Array,
          tol,
          `stds ${scale} G=${groupSize}`,
        );
      }
      const holed = rewards.slice();
      holed[0] = Number.NaN;
      holed[Math.min(groupSize, n - 1)] = Number.POSITIVE_INFINITY;
      if (groupSize === 2) holed[1] = Number.NaN; // a group with no finite reward
      const want = native.groupAdvantages({ rewards: holed, groupSize, scale: 'batch', nonFinite: 'ignore' });
      const out = { out: zeros(n), outGroupMeans: zeros(groups), outGroupStds: zeros(groups) };
      native.groupAdvantages({ rewards: f32(holed), groupSize, scale: 'batch', nonFinite: 'ignore', ...out });
      expectClose(
        readF32(out.out),
        want.advantages as Float32Array,
        tol,
        `advantages with holes G=${groupSize}`,
      );
      expectClose(
        readF32(out.outGroupStds),
        want.groupStds as Float32Array,
        tol,
        `stds with holes G=${groupSize}`,
      );
      // nonFinite 'error' (the default): checked on the device, the first bad reward named.
      expect(() => native.groupAdvantages({ rewards: f32(holed), groupSize, ...out })).toThrow(
        /groupAdvantages: rewards\[0\] is NaN \(pass nonFinite: 'ignore'/,
      );
    }
  });

  it('KL estimators with and without clamp, over four million tokens', () => {
    const rand = seededRandom(5);
    const n = 4_000_003;
    const logprobs = randomNormal(n, rand, 2);
    const refLogprobs = logprobs.map((x, i) => x + (i % 3 === 0 ? 1e-3 : 1.5) * (rand() * 2 - 1));
    const dLogprobs = f32(logprobs, 1);
    const dRef = f32(refLogprobs);
    const tol = { rtol: 1e-5, atol: 1e-7 };
    for (const estimator of ['k1', 'k2', 'k3', 'abs'] as KlEstimator[]) {
      for (const clamp of [undefined, 0.5]) {
        const want = native.klPenalty({ logprobs, refLogprobs, estimator, clamp });
        const outValues = zeros(n);
        const outGrads = zeros(n, 1);
        native.klPenalty({ logprobs: dLogprobs, refLogprobs: dRef, estimator, clamp, outValues, outGrads });
        expectClose(
          readF32(outValues),
          want.values as Float32Array,
          tol,
          `${estimator} clamp=${clamp} values`,
        );
        expectClose(readF32(outGrads), want.grads as Float32Array, tol, `${estimator} clamp=${clamp} grads`);
      }
    }
    const values = zeros(n);
    expect(
      native.klPenalty({ logprobs: dLogprobs, refLogprobs: dRef, withGrad: false, outValues: values }).grads,
    ).toBeUndefined();
  });

  /** The GRPO loss inputs for S sequences of T tokens: ragged masks, sequence 3 empty. */
  function grpoInputs(S: number, T: number, seed: number) {
    const rand = seededRandom(seed);
    const logprobs = randomNormal(S * T, rand, 1).map((x) => -Math.abs(x));
    const oldLogprobs = logprobs.map((x) => x + 0.3 * (rand() * 2 - 1));
    const refLogprobs = logprobs.map((x) => x + 0.5 * (rand() * 2 - 1));
    const advantages = randomNormal(S, rand);
    const completionMask = new Float32Array(S * T);
    for (let s = 0; s < S; s++)
      if (s !== 3) completionMask.fill(1, s * T, (s + 1) * T - ((s * 97 + 31) % Math.ceil(T / 2)));
    return { logprobs, oldLogprobs, refLogprobs, advantages, completionMask };
  }

  /** Options of one case; `old` / `ref` pass the sampling-time / reference log-probs. */
  type GrpoCase = Omit<Partial<GrpoLossOptions>, 'oldLogprobs' | 'refLogprobs'> & {
    old?: boolean;
    ref?: boolean;
  };

  function checkGrpo(S: number, T: number, cases: GrpoCase[], seed: number) {
    const host = grpoInputs(S, T, seed);
    const dev = {
      logprobs: f32(host.logprobs, 1),
      oldLogprobs: f32(host.oldLogprobs),
      refLogprobs: f32(host.refLogprobs, 2),
      advantages: f32(host.advantages),
      completionMask: f32(host.completionMask, 3),
    };
    const tol = { rtol: 1e-5, atol: 1e-6 };
    for (const { old, ref, ...c } of cases) {
      const name = `S=${S} T=${T} ${JSON.stringify({ ...c, old, ref })}`;
      const inputs = <A>(src: {
        logprobs: A;
        oldLogprobs: A;
        refLogprobs: A;
        advantages: A;
        completionMask: A;
      }) =>
        ({
          ...c,
          logprobs: src.logprobs,
          advantages: src.advantages,
          completionMask: src.completionMask,
          oldLogprobs: old ? src.oldLogprobs : undefined,
          refLogprobs: ref ? src.refLogprobs : undefined,
          withPerTokenLoss: true,
        }) as GrpoLossOptions;
      const want = native.grpoLoss(inputs(host));
      const outGrad = zeros(S * T, 1);
      const outPerTokenLoss = zeros(S * T);
      const outLoss = zeros(1, 2);
      const got = native.grpoLoss({ ...inputs<unknown>(dev), outGrad, outPerTokenLoss, outLoss });
      expectScalarClose(got.loss, want.loss, tol, `loss ${name}`);
      // outLoss holds the loss where it lives: the float32 rounding of the float64 value returned.
      expect(readF32(outLoss)[0]).toBe(Math.fround(got.loss));
      const refGrad = want.gradLogprobs as Float32Array;
      expectClose(readF32(outGrad), refGrad, gradTol(refGrad, 1e-5, 1e-6), `grad ${name}`);
      expectClose(readF32(outPerTokenLoss), want.perTokenLoss as Float32Array, tol, `perTokenLoss ${name}`);
      for (const key of ['meanKl', 'clipRatioLow', 'clipRatioHigh', 'clipRatioRegion', 'meanRatio'] as const)
        expectScalarClose(got.stats[key], want.stats[key], tol, `${key} ${name}`);
      expect(got.stats.tokens).toBe(want.stats.tokens);
    }
  }

  it('GRPO loss: every loss type and KL estimator, ratios that clip, ragged masks, lossScale', () => {
    checkGrpo(
      7,
      301,
      [
        { beta: 0 },
        { beta: 0, old: true },
        { beta: 0.04, ref: true, old: true, epsilonHigh: 0.28 },
        { beta: 0.04, ref: true, klClamp: 0.3 },
        ...(['k1', 'k2', 'abs'] as KlEstimator[]).map((klEstimator) => ({
          beta: 0.1,
          ref: true,
          old: true,
          klEstimator,
        })),
        { beta: 0.04, ref: true, old: true, lossType: 'bnpo' },
        { beta: 0.04, ref: true, old: true, lossType: 'dr_grpo' },
        { beta: 0.04, ref: true, old: true, lossType: 'dr_grpo', maxCompletionLength: 512 },
        { beta: 0.04, ref: true, old: true, lossType: 'dapo' },
        { beta: 0, ref: true, old: true, lossType: 'dapo', numItemsInBatch: 4000 },
        { beta: 0.04, ref: true, old: true, lossScale: 1 / 3 },
      ],
      9,
    );
  });

  it('GRPO loss over millions of tokens: 2048 x 1024, and one sequence of a million', () => {
    const cases: GrpoCase[] = [
      { beta: 0.04, ref: true, old: true },
      { beta: 0.04, ref: true, old: true, lossType: 'bnpo' },
    ];
    checkGrpo(2048, 1024, cases, 13);
    checkGrpo(1, 1_000_000, cases, 17);
  });

  it('results stay on the device: every output is required, and devices must not mix', () => {
    const logits = zeros(8);
    const targets = i32(Int32Array.of(1, 2));
    const lp = { logits, targets, vocabSize: 4 };
    expect(() => native.tokenLogprobs(lp)).toThrow(
      /tokenLogprobs: outLogprobs is required on cuda: results stay on the device, so pass a float32 cuda tensor of 2 elements/,
    );
    expect(() => native.tokenLogprobs({ ...lp, outLogprobs: zeros(2) })).toThrow(
      /tokenLogprobs: outLse is required on cuda/,
    );
    expect(() =>
      native.tokenLogprobs({ ...lp, outLogprobs: zeros(2), outLse: zeros(2), withEntropy: true }),
    ).toThrow(/tokenLogprobs: outEntropy is required on cuda/);
    expect(() => native.tokenLogprobs({ ...lp, outLogprobs: new Float32Array(2), outLse: zeros(2) })).toThrow(
      /tokenLogprobs: targets is on cuda but outLogprobs is on cpu/,
    );
    expect(() => native.tokenLogprobs({ ...lp, targets: Int32Array.of(1, 2) })).toThrow(
      /tokenLogprobs: targets is on cpu but logits is on cuda/,
    );
    expect(() =>
      native.tokenLogprobs({
        ...lp,
        targets: i32(Int32Array.of(1, 9)),
        outLogprobs: zeros(2),
        outLse: zeros(2),
      }),
    ).toThrow(/tokenLogprobs: targets\[1\] = 9 is outside the vocabulary \[0, 4\)/);
    const back = { ...lp, lse: zeros(2), gradLogprobs: zeros(2) };
    expect(() => native.tokenLogprobsBackward(back)).toThrow(
      /tokenLogprobsBackward: out is required on cuda \(or inPlace: true\)/,
    );
    const fl = { hidden: zeros(8), weight: zeros(12), targets, hiddenSize: 4 };
    expect(() => native.fusedLinearLogprobs({ ...fl, hidden: gpu.zeros(8, 'bfloat16') })).toThrow(
      /fusedLinearLogprobs: hidden is bfloat16 but weight is float32: give both in one dtype/,
    );
    const flBack = { ...fl, lse: zeros(2), gradLogprobs: zeros(2) };
    expect(() => native.fusedLinearLogprobsBackward({ ...flBack, gradHidden: zeros(8) })).toThrow(
      /fusedLinearLogprobsBackward: gradWeight is required on cuda/,
    );
    expect(() => native.fusedLinearLogprobsBackward({ ...flBack, needGradWeight: false })).toThrow(
      /fusedLinearLogprobsBackward: gradHidden is required on cuda/,
    );
    expect(() => native.groupAdvantages({ rewards: zeros(4), groupSize: 2 })).toThrow(
      /groupAdvantages: out is required on cuda/,
    );
    expect(() => native.klPenalty({ logprobs: zeros(3), refLogprobs: zeros(3) })).toThrow(
      /klPenalty: outValues is required on cuda/,
    );
    const grpo = { logprobs: zeros(8), advantages: zeros(2), completionMask: zeros(8), beta: 0 };
    expect(() => native.grpoLoss(grpo)).toThrow(/grpoLoss: outGrad is required on cuda/);
    expect(() => native.grpoLoss({ ...grpo, withGrad: false, withPerTokenLoss: true })).toThrow(
      /grpoLoss: outPerTokenLoss is required on cuda/,
    );
    // Statistics alone need no output: reduced on the device, copied back as numbers.
    const stats = native.grpoLoss({ ...grpo, withGrad: false });
    expect(stats.gradLogprobs).toBeUndefined();
    expect(stats.stats.tokens).toBe(0);
  });
});
