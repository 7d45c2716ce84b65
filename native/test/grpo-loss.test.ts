import {
  expectClose,
  expectScalarClose,
  Fixture,
  finiteDifference,
  fixtureCases,
  maxAbs,
  randomNormal,
  seededRandom,
} from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  type GrpoLossType,
  groupAdvantages,
  grpoLoss,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '../index.js';

const CASES = fixtureCases('grpo');
// A case with every loss type's d loss / d logits stored (the public set's case-g4x2-v1000).
const [FULL_CASE] = fixtureCases('grpo', { with: ['grad_logits.bnpo', 'grad_logits.dr_grpo'] });
const FIXTURE_TYPES: GrpoLossType[] = ['grpo', 'bnpo', 'dr_grpo'];

function loadCase(name: string) {
  const f = new Fixture(`grpo/${name}.safetensors`);
  const common = {
    logprobs: f.f32('per_token_logps'),
    oldLogprobs: f.f32('old_logprobs'),
    refLogprobs: f.f32('ref_logprobs'),
    advantages: f.f32('advantages'),
    completionMask: f.f32('completion_mask'),
    beta: f.scalar('beta'),
    epsilonLow: f.scalar('epsilon_low'),
    epsilonHigh: f.scalar('epsilon_high'),
  };
  return { f, common };
}

describe('grpoLoss vs the grpo fixtures', () => {
  for (const name of CASES) {
    for (const lossType of FIXTURE_TYPES) {
      it(`${name}: ${lossType} loss and d loss / d logp`, () => {
        const { f, common } = loadCase(name);
        const out = grpoLoss({ ...common, lossType, withPerTokenLoss: true });
        // Fixture README section 6: float32 losses within 1e-5 relative, gradients within 1e-3 * max|ref|.
        expectScalarClose(out.loss, f.scalar(`loss.${lossType}`), { rtol: 1e-5 }, `loss.${lossType}`);
        const ref = f.f64(`grad_logps.${lossType}`);
        expectClose(out.gradLogprobs!, ref, { atol: 1e-3 * maxAbs(ref) }, `grad_logps.${lossType}`);
        expectClose(out.perTokenLoss!, f.f64('per_token_loss'), { atol: 1e-5, rtol: 1e-5 }, 'per_token_loss');
      });
    }

    it(`${name}: statistics (mean KL, clip ratios, mean ratio)`, () => {
      const { f, common } = loadCase(name);
      const { stats } = grpoLoss(common);
      expectScalarClose(
        stats.meanKl,
        f.scalar('metric.mean_kl'),
        { rtol: 1e-5, atol: 1e-7 },
        'metric.mean_kl',
      );
      // Clip ratios from the fixture's is_clipped flags, split by the sign of the advantage.
      const clipped = f.f64('is_clipped');
      const mask = f.f64('completion_mask');
      const adv = f.f64('advantages');
      const ratio = f.f64('ratio');
      const t = clipped.length / adv.length;
      let low = 0;
      let high = 0;
      let tokens = 0;
      let ratioSum = 0;
      for (let i = 0; i < clipped.length; i++) {
        tokens += mask[i];
        ratioSum += mask[i] * ratio[i];
        if (clipped[i] && mask[i]) adv[Math.floor(i / t)] > 0 ? high++ : low++;
      }
      expect(stats.tokens).toBe(tokens);
      expectScalarClose(stats.clipRatioLow, low / tokens, { atol: 1e-12 }, 'clipRatioLow');
      expectScalarClose(stats.clipRatioHigh, high / tokens, { atol: 1e-12 }, 'clipRatioHigh');
      expectScalarClose(stats.clipRatioRegion, (low + high) / tokens, { atol: 1e-12 }, 'clipRatioRegion');
      expectScalarClose(stats.meanRatio, ratioSum / tokens, { rtol: 1e-5 }, 'meanRatio');
    });

    it(`${name}: logits -> log-probs -> loss -> d loss / d logits, end to end`, () => {
      const { f, common } = loadCase(name);
      const [, , vocab] = f.shape('logits');
      const logits = f.f32('logits');
      const targets = f.i32('completion_ids');
      const lp = tokenLogprobs({ logits, targets, vocabSize: vocab });
      const out = grpoLoss({ ...common, logprobs: lp.logprobs });
      expectScalarClose(out.loss, f.scalar('loss.grpo'), { rtol: 1e-5 }, 'loss.grpo');
      const dlogits = tokenLogprobsBackward({
        logits,
        targets,
        lse: lp.lse,
        vocabSize: vocab,
        gradLogprobs: out.gradLogprobs,
      });
      const ref = f.f64('grad_logits.grpo');
      expectClose(dlogits, ref, { atol: 1e-3 * maxAbs(ref) }, 'grad_logits.grpo');
    });

    it(`${name}: advantages from the rewards`, () => {
      const { f } = loadCase(name);
      const out = groupAdvantages({ rewards: f.f32('rewards'), groupSize: f.scalar('num_generations') });
      expectClose(out.advantages, f.f64('advantages'), { atol: 1e-5, rtol: 1e-5 }, 'advantages');
    });
  }

  it('dapo divides by the tokens of the whole generation batch', () => {
    const { f, common } = loadCase(FULL_CASE);
    // In one micro-batch with the default normaliser DAPO is BNPO.
    expectScalarClose(
      grpoLoss({ ...common, lossType: 'dapo' }).loss,
      f.scalar('loss.bnpo'),
      { rtol: 1e-5 },
      'dapo',
    );
    const tokens = f.f64('completion_mask').reduce((s, m) => s + m, 0);
    const half = grpoLoss({ ...common, lossType: 'dapo', numItemsInBatch: 2 * tokens });
    expectScalarClose(half.loss, f.scalar('loss.bnpo') / 2, { rtol: 1e-5 }, 'dapo / 2');
    expectClose(
      half.gradLogprobs!,
      f.f64('grad_logps.bnpo').map((g) => g / 2),
      { atol: 1e-3 * maxAbs(f.f64('grad_logps.bnpo')) },
      'dapo grad',
    );
  });

  it('dr_grpo divides by S * maxCompletionLength', () => {
    const { f, common } = loadCase(FULL_CASE);
    const [, t] = f.shape('completion_mask');
    const out = grpoLoss({ ...common, lossType: 'dr_grpo', maxCompletionLength: 4 * t });
    expectScalarClose(out.loss, f.scalar('loss.dr_grpo') / 4, { rtol: 1e-5 }, 'dr_grpo with max length 4T');
  });
});

describe('grpoLoss properties', () => {
  const rand = seededRandom(3);
  const s = 6;
  const t = 7;
  const logprobs = randomNormal(s * t, rand, 0.5).map((x) => -Math.abs(x) - 0.1);
  const oldLogprobs = logprobs.map((x) => x + 0.3 * (rand() - 0.5));
  const refLogprobs = logprobs.map((x) => x + 0.5 * (rand() - 0.5));
  const advantages = randomNormal(s, rand);
  const completionMask = Float32Array.from({ length: s * t }, (_, i) =>
    i % t < 2 + (Math.floor(i / t) % 5) ? 1 : 0,
  );

  for (const lossType of ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as GrpoLossType[]) {
    for (const klEstimator of ['k1', 'k2', 'k3', 'abs'] as const) {
      it(`${lossType} / ${klEstimator}: gradient matches finite differences`, () => {
        const opts = {
          oldLogprobs,
          refLogprobs,
          advantages,
          completionMask,
          beta: 0.07,
          epsilonLow: 0.2,
          epsilonHigh: 0.28,
          lossType,
          klEstimator,
        };
        const out = grpoLoss({ ...opts, logprobs });
        // h small enough not to cross a clip boundary or the kink of |d|: the random draws keep
        // every ratio and every logp - ref more than 1e-3 away from them (checked below).
        const h = 1e-3;
        for (let i = 0; i < logprobs.length; i++) {
          const r = Math.exp(logprobs[i] - oldLogprobs[i]);
          expect(Math.min(Math.abs(r - 0.8), Math.abs(r - 1.28))).toBeGreaterThan(2 * h);
          expect(Math.abs(logprobs[i] - refLogprobs[i])).toBeGreaterThan(2 * h);
        }
        const fd = finiteDifference(
          (x) => grpoLoss({ ...opts, logprobs: Float32Array.from(x), withGrad: false }).loss,
          Float64Array.from(logprobs),
          h,
        );
        expectClose(out.gradLogprobs!, fd, { atol: 2e-3 * maxAbs(fd) + 1e-6 }, `d ${lossType} / dlogp`);
      });
    }
  }

  it('without oldLogprobs the ratio is 1 and the policy gradient is -A * w', () => {
    const out = grpoLoss({ logprobs, advantages, completionMask, beta: 0 });
    expect(out.stats.meanRatio).toBe(1);
    expect(out.stats.clipRatioRegion).toBe(0);
    for (let i = 0; i < s; i++) {
      let len = 0;
      for (let j = 0; j < t; j++) len += completionMask[i * t + j];
      for (let j = 0; j < t; j++) {
        const expected = completionMask[i * t + j] ? -advantages[i] / (len * s) : 0;
        expect(out.gradLogprobs![i * t + j]).toBeCloseTo(expected, 6);
      }
    }
    // Zero-mean advantages over a full mask give zero loss (the grpo-step fixture's step 1).
    const zeroMean = Float32Array.of(1, -1, 0.5, -0.5, 2, -2);
    expect(
      grpoLoss({ logprobs, advantages: zeroMean, completionMask: new Float32Array(s * t).fill(1), beta: 0 })
        .loss,
    ).toBeCloseTo(0, 6);
  });

  it('a sequence with an empty mask contributes nothing and no NaN', () => {
    const mask = Float32Array.from(completionMask);
    mask.fill(0, 0, t);
    const out = grpoLoss({
      logprobs,
      oldLogprobs,
      refLogprobs,
      advantages,
      completionMask: mask,
      beta: 0.04,
    });
    expect(Number.isFinite(out.loss)).toBe(true);
    expect(maxAbs(out.gradLogprobs!.subarray(0, t))).toBe(0);
  });
});
