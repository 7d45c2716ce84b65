// The CUDA kernels against their CPU twins, on random inputs. Runs only on a CUDA build with a GPU
// (skipped elsewhere). Tolerances, and why:
// - float32 log-probs / lse / entropy: both sides accumulate float32 exponentials (different
//   order, __expf vs the CPU's polynomial, each a few ulp): 1e-5 relative + 1e-5 absolute (lse: 1e-6).
// - bfloat16 inputs are widened exactly to float32 for the CPU reference, so the forward differs only
//   in accumulation order: the same tolerances as float32.
// - dlogits: elementwise p = exp(z - lse), 1e-4 relative + 1e-6 * max|dlogits|; written in place
//   in bfloat16, one more rounding of 2^-9 relative: 4e-3 relative.
// - fused linear: logits from cuBLAS (no TF32) vs the CPU sgemm, float32 accumulation over H:
//   log-probs 1e-5 (float32) / 1e-4 (bfloat16 tensor cores); gradients 1e-4 relative + 1e-5 * max.
//   The bfloat16 backward rounds dlogits to bfloat16 (as a bf16 LM head does): 1e-2 * max|grad|.
// - advantages: float64 moments on both sides, results rounded to float32: 1e-6 relative.
// - KL and the GRPO loss: the same float32 formulas, exp within a few ulp: 1e-5 relative.
import { createRequire } from 'node:module';
import { expectClose, expectScalarClose, maxAbs, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import type {
  FusedLinearBackwardOptions,
  FusedLinearGrads,
  FusedLinearOptions,
  GroupAdvantagesOptions,
  GroupAdvantagesResult,
  GrpoLossOptions,
  GrpoLossResult,
  KlEstimator,
  KlPenaltyOptions,
  KlPenaltyResult,
  LogprobsBackwardOptions,
  LogprobsOptions,
  LogprobsResult,
} from '../index.js';
import * as cpu from '../index.js';

// The JS types of `cuda.*` (index.ts does not declare them yet).
type DType = 'float32' | 'bfloat16';
/** Float32Array, or Uint16Array of raw bfloat16 bits with `dtype: 'bfloat16'`. */
type Input = Float32Array | Uint16Array;
type CudaLogprobsOptions = Omit<LogprobsOptions, 'logits'> & { logits: Input; dtype?: DType };
type CudaLogprobsBackwardOptions = Omit<LogprobsBackwardOptions, 'logits'> & { logits: Input; dtype?: DType };
type CudaFusedLinearOptions = Omit<FusedLinearOptions, 'hidden' | 'weight'> & {
  hidden: Input;
  weight: Input;
  dtype?: DType;
};
type CudaFusedLinearBackwardOptions = Omit<FusedLinearBackwardOptions, 'hidden' | 'weight'> & {
  hidden: Input;
  weight: Input;
  dtype?: DType;
};
interface CudaDeviceInfo {
  available: boolean;
  deviceCount: number;
  device?: number;
  name?: string;
  computeCapability?: string;
  totalMemory?: number;
  multiprocessors?: number;
  runtimeVersion: number;
  driverVersion: number;
  cublas: boolean;
  error?: string;
}
interface CudaKernels {
  tokenLogprobs(o: CudaLogprobsOptions): LogprobsResult;
  /** float32 dlogits; with `inPlace` the `logits` array itself (bfloat16 bits for bfloat16). */
  tokenLogprobsBackward(o: CudaLogprobsBackwardOptions): Input;
  fusedLinearLogprobs(o: CudaFusedLinearOptions): LogprobsResult;
  fusedLinearLogprobsBackward(o: CudaFusedLinearBackwardOptions): FusedLinearGrads;
  groupAdvantages(o: GroupAdvantagesOptions): GroupAdvantagesResult;
  klPenalty(o: KlPenaltyOptions): KlPenaltyResult;
  grpoLoss(o: GrpoLossOptions): GrpoLossResult;
  deviceInfo(): CudaDeviceInfo;
}

// The addon object itself (index.ts re-exports its CPU functions one by one, not `cuda`).
const addon = createRequire(import.meta.url)(cpu.binaryPath) as { cuda?: CudaKernels };
const cuda = cpu.buildInfo().cuda ? addon.cuda : undefined;
const info = cuda?.deviceInfo();
const gpu = info?.available === true;
const cublas = info?.cublas === true;

/** Rounds float32 to bfloat16 (nearest even; finite inputs): the raw bits and their exact float32 values. */
function toBf16(x: Float32Array): { bits: Uint16Array; values: Float32Array } {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const bits = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) bits[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) & 0xffff;
  return { bits, values: fromBf16(bits) };
}

function fromBf16(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

const LOGPROB_TOL = { rtol: 1e-5, atol: 1e-5 };
const LSE_TOL = { rtol: 1e-6, atol: 1e-5 };
const gradTol = (ref: Float32Array, rtol = 1e-4, scale = 1e-6) => ({ rtol, atol: scale * maxAbs(ref) });

describe.skipIf(!gpu)('CUDA kernels vs their CPU twins', () => {
  const k = cuda as CudaKernels;

  it('deviceInfo describes the GPU', () => {
    expect(info?.deviceCount).toBeGreaterThan(0);
    expect(info?.computeCapability).toMatch(/^\d+\.\d+$/);
    expect(info?.runtimeVersion).toBeGreaterThan(0);
  });

  // 1001 and 4099: rows start off 16-byte boundaries, exercising the unaligned head and tail.
  const SIZES: [number, number][] = [
    [1000, 7],
    [1001, 5],
    [4099, 3],
    [32000, 5],
    [151936, 3],
  ];

  for (const [vocab, n] of SIZES) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`token log-probs, ${dtype}, V = ${vocab}, N = ${n}: forward and backward`, () => {
        const rand = seededRandom(vocab + n);
        const raw = randomNormal(n * vocab, rand, 3);
        const bf = dtype === 'bfloat16' ? toBf16(raw) : undefined;
        const logits = bf ? bf.values : raw; // the exact float32 values of the device input
        const input: Input = bf ? bf.bits : raw;
        const targets = Int32Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab);
        targets[1] = -100; // an ignored row
        for (const temperature of [1, 0.7]) {
          const common = { targets, vocabSize: vocab, temperature, withEntropy: true, ignoreIndex: -100 };
          const want = cpu.tokenLogprobs({ ...common, logits });
          const got = k.tokenLogprobs({ ...common, logits: input, dtype });
          expectClose(got.logprobs, want.logprobs, LOGPROB_TOL, `logprobs T=${temperature}`);
          expectClose(got.lse, want.lse, LSE_TOL, `lse T=${temperature}`);
          expectClose(got.entropy!, want.entropy!, LOGPROB_TOL, `entropy T=${temperature}`);
          expect(got.logprobs[1]).toBe(0);

          const gradLogprobs = randomNormal(n, rand);
          const gradEntropy = randomNormal(n, rand, 0.1);
          const back = { ...common, lse: want.lse, entropy: want.entropy, gradLogprobs, gradEntropy };
          const ref = cpu.tokenLogprobsBackward({ ...back, logits });
          const dlogits = k.tokenLogprobsBackward({ ...back, logits: input, dtype }) as Float32Array;
          expect(dlogits).toBeInstanceOf(Float32Array);
          expectClose(dlogits, ref, gradTol(ref), `dlogits T=${temperature}`);
          for (let j = vocab; j < 2 * vocab; j++) expect(dlogits[j]).toBe(0); // the ignored row

          // In place: the gradient replaces the input, in its dtype.
          const copy = input.slice();
          const inPlace = k.tokenLogprobsBackward({ ...back, logits: copy, dtype, inPlace: true });
          expect(inPlace).toBe(copy);
          if (bf)
            expectClose(fromBf16(copy as Uint16Array), ref, gradTol(ref, 4e-3), 'dlogits in place (bf16)');
          else expect(copy).toEqual(dlogits);
        }
      });
    }
  }

  it('token log-probs: -inf (masked) logits, log-probs only, out buffer', () => {
    const vocab = 5000;
    const logits = new Float32Array(2 * vocab).fill(Number.NEGATIVE_INFINITY);
    logits[4500] = 1;
    logits[4999] = 2;
    logits.set(randomNormal(vocab, seededRandom(3)), vocab);
    const targets = Int32Array.of(4999, 17);
    const want = cpu.tokenLogprobs({ logits, targets, vocabSize: vocab, withEntropy: true });
    const got = k.tokenLogprobs({ logits, targets, vocabSize: vocab, withEntropy: true });
    expectClose(got.logprobs, want.logprobs, LOGPROB_TOL, 'logprobs');
    expectClose(got.entropy!, want.entropy!, LOGPROB_TOL, 'entropy');
    const gradLogprobs = Float32Array.of(1, -0.5);
    const opts = { logits, targets, vocabSize: vocab, lse: want.lse, gradLogprobs };
    const ref = cpu.tokenLogprobsBackward(opts);
    const out = new Float32Array(2 * vocab).fill(Number.NaN);
    expect(k.tokenLogprobsBackward({ ...opts, out })).toBe(out);
    expectClose(out, ref, gradTol(ref), 'dlogits');
  });

  describe.skipIf(!gpu || !cublas)('fused linear log-probs (cuBLAS)', () => {
    const H = 64;
    for (const [vocab, n] of [
      [1000, 7],
      [32000, 5],
      [151936, 5],
    ]) {
      for (const dtype of ['float32', 'bfloat16'] as const) {
        it(`${dtype}, V = ${vocab}, N = ${n}, H = ${H}, chunks of 2 tokens`, () => {
          const rand = seededRandom(vocab * 3 + n);
          const h32 = randomNormal(n * H, rand);
          const w32 = randomNormal(vocab * H, rand, 0.2);
          const bh = dtype === 'bfloat16' ? toBf16(h32) : undefined;
          const bw = dtype === 'bfloat16' ? toBf16(w32) : undefined;
          const hidden = bh ? bh.values : h32;
          const weight = bw ? bw.values : w32;
          const targets = Int32Array.from({ length: n }, (_, i) => (i * 104729 + 5) % vocab);
          targets[n - 1] = -1;
          const common = {
            targets,
            hiddenSize: H,
            chunkSize: 2,
            withEntropy: true,
            ignoreIndex: -1,
            temperature: 0.9,
          };
          const device = { ...common, hidden: bh ? bh.bits : h32, weight: bw ? bw.bits : w32, dtype };
          const want = cpu.fusedLinearLogprobs({ ...common, hidden, weight });
          const got = k.fusedLinearLogprobs(device);
          const tol = bh ? { rtol: 1e-4, atol: 1e-4 } : LOGPROB_TOL;
          expectClose(got.logprobs, want.logprobs, tol, 'logprobs');
          expectClose(got.lse, want.lse, tol, 'lse');
          expectClose(got.entropy!, want.entropy!, tol, 'entropy');

          const grads = { lse: want.lse, entropy: want.entropy, gradLogprobs: randomNormal(n, rand) };
          const start = randomNormal(vocab * H, rand, 0.01); // gradWeight is accumulated into
          const ref = cpu.fusedLinearLogprobsBackward({
            ...common,
            ...grads,
            hidden,
            weight,
            gradWeight: start.slice(),
          });
          const gw = start.slice();
          const out = k.fusedLinearLogprobsBackward({ ...device, ...grads, gradWeight: gw });
          expect(out.gradWeight).toBe(gw);
          const scale = bh ? 1e-2 : 1e-5;
          expectClose(out.gradHidden!, ref.gradHidden!, gradTol(ref.gradHidden!, 1e-4, scale), 'gradHidden');
          // Compare the accumulated part: the starting values are the same on both sides.
          const dw = out.gradWeight.map((x, i) => x - start[i]);
          const refDw = ref.gradWeight.map((x, i) => x - start[i]);
          expectClose(dw, refDw, gradTol(refDw, 1e-4, scale), 'gradWeight');

          const noHidden = k.fusedLinearLogprobsBackward({ ...device, ...grads, needGradHidden: false });
          expect(noHidden.gradHidden).toBeUndefined();
        });
      }
    }
  });

  describe.skipIf(!gpu || cublas)('fused linear log-probs without cuBLAS', () => {
    it('throws a clear error', () => {
      const o = {
        hidden: new Float32Array(4),
        weight: new Float32Array(8),
        targets: Int32Array.of(1),
        hiddenSize: 4,
      };
      expect(() => k.fusedLinearLogprobs(o)).toThrow(/need cuBLAS/);
    });
  });

  it('group advantages: group / batch / none, odd group sizes, non-finite rewards left out', () => {
    const rand = seededRandom(11);
    for (const groupSize of [2, 7, 8, 64, 300]) {
      const groups = 31;
      const rewards = randomNormal(groups * groupSize, rand, 2);
      for (let i = 0; i < rewards.length; i += 5) rewards[i] = Math.round(rewards[i]); // ties, like 0/1 rewards
      for (const scale of ['group', 'batch', 'none'] as const) {
        const want = cpu.groupAdvantages({ rewards, groupSize, scale });
        const got = k.groupAdvantages({ rewards, groupSize, scale });
        const tol = { rtol: 1e-6, atol: 1e-7 };
        expectClose(got.advantages, want.advantages, tol, `advantages ${scale} G=${groupSize}`);
        expectClose(got.groupMeans, want.groupMeans, tol, `means ${scale} G=${groupSize}`);
        expectClose(got.groupStds, want.groupStds, tol, `stds ${scale} G=${groupSize}`);
      }
      const holed = rewards.slice();
      holed[0] = Number.NaN;
      holed[groupSize] = Number.POSITIVE_INFINITY;
      if (groupSize === 2) holed[1] = Number.NaN; // a group with no finite reward
      const want = cpu.groupAdvantages({ rewards: holed, groupSize, scale: 'batch', nonFinite: 'ignore' });
      const got = k.groupAdvantages({ rewards: holed, groupSize, scale: 'batch', nonFinite: 'ignore' });
      expectClose(
        got.advantages,
        want.advantages,
        { rtol: 1e-6, atol: 1e-7 },
        `advantages with holes G=${groupSize}`,
      );
      expectClose(
        got.groupStds,
        want.groupStds,
        { rtol: 1e-6, atol: 1e-7 },
        `stds with holes G=${groupSize}`,
      );
    }
  });

  it('KL estimators with and without clamp', () => {
    const rand = seededRandom(5);
    const n = 100_003;
    const logprobs = randomNormal(n, rand, 2);
    const refLogprobs = logprobs.map((x, i) => x + (i % 3 === 0 ? 1e-3 : 1.5) * (rand() * 2 - 1));
    for (const estimator of ['k1', 'k2', 'k3', 'abs'] as KlEstimator[]) {
      for (const clamp of [undefined, 0.5]) {
        const want = cpu.klPenalty({ logprobs, refLogprobs, estimator, clamp });
        const got = k.klPenalty({ logprobs, refLogprobs, estimator, clamp });
        const tol = { rtol: 1e-5, atol: 1e-7 };
        expectClose(got.values, want.values, tol, `${estimator} clamp=${clamp} values`);
        expectClose(got.grads!, want.grads!, tol, `${estimator} clamp=${clamp} grads`);
      }
    }
    expect(k.klPenalty({ logprobs, refLogprobs, withGrad: false }).grads).toBeUndefined();
  });

  it('GRPO loss: every loss type and KL estimator, ratios that clip, ragged masks', () => {
    const rand = seededRandom(9);
    const S = 7;
    const T = 301;
    const logprobs = randomNormal(S * T, rand, 1).map((x) => -Math.abs(x));
    const oldLogprobs = logprobs.map((x) => x + 0.3 * (rand() * 2 - 1));
    const refLogprobs = logprobs.map((x) => x + 0.5 * (rand() * 2 - 1));
    const advantages = randomNormal(S, rand);
    const completionMask = new Float32Array(S * T);
    // Lengths 31, 128, ..., one sequence empty (its mean uses max(len, 1)), none a multiple of 16.
    for (let s = 0; s < S; s++) if (s !== 3) completionMask.fill(1, s * T, s * T + ((s * 97 + 31) % T));
    const base = { logprobs, advantages, completionMask, withPerTokenLoss: true };
    const cases: Partial<GrpoLossOptions>[] = [
      { beta: 0 },
      { beta: 0, oldLogprobs },
      { beta: 0.04, refLogprobs, oldLogprobs, epsilonHigh: 0.28 },
      { beta: 0.04, refLogprobs, klClamp: 0.3 },
      ...(['k1', 'k2', 'abs'] as KlEstimator[]).map((klEstimator) => ({
        beta: 0.1,
        refLogprobs,
        oldLogprobs,
        klEstimator,
      })),
      { beta: 0.04, refLogprobs, oldLogprobs, lossType: 'bnpo' },
      { beta: 0.04, refLogprobs, oldLogprobs, lossType: 'dr_grpo' },
      { beta: 0.04, refLogprobs, oldLogprobs, lossType: 'dr_grpo', maxCompletionLength: 512 },
      { beta: 0.04, refLogprobs, oldLogprobs, lossType: 'dapo' },
      { beta: 0, refLogprobs, oldLogprobs, lossType: 'dapo', numItemsInBatch: 4000 },
    ];
    for (const c of cases) {
      const name = JSON.stringify({
        ...c,
        refLogprobs: undefined,
        oldLogprobs: c.oldLogprobs ? 'old' : undefined,
      });
      const opts = { ...base, ...c } as GrpoLossOptions;
      const want = cpu.grpoLoss(opts);
      const got = k.grpoLoss(opts);
      const tol = { rtol: 1e-5, atol: 1e-6 };
      expectScalarClose(got.loss, want.loss, tol, `loss ${name}`);
      expectClose(
        got.gradLogprobs!,
        want.gradLogprobs!,
        gradTol(want.gradLogprobs!, 1e-5, 1e-6),
        `grad ${name}`,
      );
      expectClose(got.perTokenLoss!, want.perTokenLoss!, { rtol: 1e-5, atol: 1e-6 }, `perTokenLoss ${name}`);
      for (const key of ['meanKl', 'clipRatioLow', 'clipRatioHigh', 'clipRatioRegion', 'meanRatio'] as const)
        expectScalarClose(got.stats[key], want.stats[key], tol, `${key} ${name}`);
      expect(got.stats.tokens).toBe(want.stats.tokens);
    }
    expect(k.grpoLoss({ ...base, beta: 0, withGrad: false }).gradLogprobs).toBeUndefined();
  });

  it('rejects bad input like the CPU bindings, naming the argument', () => {
    const logits = new Float32Array(8);
    expect(() => k.tokenLogprobs({ logits, targets: Int32Array.of(1, 4), vocabSize: 4 })).toThrow(
      /cuda\.tokenLogprobs: targets\[1\] = 4 is outside the vocabulary/,
    );
    expect(() => k.tokenLogprobs({ logits, targets: Int32Array.of(1), vocabSize: 4 })).toThrow(
      /logits has 8 elements/,
    );
    expect(() =>
      k.tokenLogprobs({ logits, targets: Int32Array.of(1, 2), vocabSize: 4, dtype: 'bfloat16' }),
    ).toThrow(/logits must be a Uint16Array/);
    const wrongDtype = { logits, targets: Int32Array.of(1, 2), vocabSize: 4, dtype: 'float16' as DType };
    expect(() => k.tokenLogprobs(wrongDtype)).toThrow(RangeError);
    const lse = new Float32Array(2);
    const back = { logits, targets: Int32Array.of(1, 2), vocabSize: 4, lse };
    expect(() => k.tokenLogprobsBackward(back)).toThrow(/give gradLogprobs, gradEntropy or both/);
    expect(() => k.tokenLogprobsBackward({ ...back, gradEntropy: lse })).toThrow(/gradEntropy needs entropy/);
    expect(() => k.tokenLogprobsBackward({ ...back, gradLogprobs: lse, inPlace: true, out: logits })).toThrow(
      /either inPlace or out/,
    );
    expect(() =>
      k.fusedLinearLogprobs({
        hidden: new Float32Array(4),
        weight: new Float32Array(7),
        targets: Int32Array.of(0),
        hiddenSize: 4,
      }),
    ).toThrow(/weight has 7 elements/);
    expect(() => k.groupAdvantages({ rewards: new Float32Array(5), groupSize: 2 })).toThrow(
      /not a multiple of groupSize/,
    );
    expect(() => k.groupAdvantages({ rewards: Float32Array.of(1, Number.NaN), groupSize: 2 })).toThrow(
      /rewards\[1\] is NaN/,
    );
    expect(() => k.klPenalty({ logprobs: lse, refLogprobs: new Float32Array(3) })).toThrow(
      /refLogprobs has 3 elements/,
    );
    const grpo = { logprobs: lse, advantages: Float32Array.of(1), completionMask: lse };
    expect(() => k.grpoLoss({ ...grpo, beta: 0.1 })).toThrow(/refLogprobs is required when beta != 0/);
    expect(() => k.grpoLoss({ ...grpo, beta: 0, lossType: 'ppo' as 'grpo' })).toThrow(RangeError);
  });
});
