import {
  expectClose,
  Fixture,
  finiteDifference,
  fixtureCases,
  maxAbs,
  randomNormal,
  seededRandom,
} from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { type KlEstimator, klPenalty } from '../index.js';

const definitions: Record<KlEstimator, (d: number) => number> = {
  k1: (d) => d,
  k2: (d) => 0.5 * d * d,
  k3: (d) => Math.expm1(-d) + d,
  abs: (d) => Math.abs(d),
};

describe('klPenalty', () => {
  for (const name of fixtureCases('grpo')) {
    it(`${name}: k3 matches the fixture's per-token KL`, () => {
      const f = new Fixture(`grpo/${name}.safetensors`);
      const out = klPenalty({ logprobs: f.f32('per_token_logps'), refLogprobs: f.f32('ref_logprobs') });
      expectClose(out.values, f.f64('per_token_kl'), { atol: 1e-6, rtol: 1e-5 }, 'per_token_kl');
    });
  }

  const rand = seededRandom(5);
  const n = 1003; // not a multiple of the vector width
  const logprobs = randomNormal(n, rand, 2).map((x) => -Math.abs(x));
  const refLogprobs = Float32Array.from(logprobs, (x, i) => x + (i % 3 === 0 ? 1e-4 : 1.5) * (rand() - 0.5));
  const d = Array.from(logprobs, (x, i) => Math.fround(x) - Math.fround(refLogprobs[i]));

  for (const estimator of ['k1', 'k2', 'k3', 'abs'] as KlEstimator[]) {
    it(`${estimator}: values match the definition, gradients match finite differences`, () => {
      const out = klPenalty({ logprobs, refLogprobs, estimator });
      // Relative to the value: k3 near d = 0 is ~d^2/2 ~ 1e-9 and must not drown in cancellation.
      expectClose(
        out.values,
        d.map(definitions[estimator]),
        { atol: 1e-12, rtol: 2e-6 },
        `${estimator} values`,
      );
      const fd = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        // |d| has a kink at 0: a central difference straddling it is meaningless.
        if (estimator === 'abs' && Math.abs(d[i]) < 1e-5) {
          fd[i] = Math.sign(d[i]);
          continue;
        }
        const one = (x: Float64Array) => definitions[estimator](x[0] - refLogprobs[i]);
        fd[i] = finiteDifference(one, Float64Array.of(logprobs[i]), 1e-6)[0];
      }
      expectClose(out.grads!, fd, { atol: 1e-6, rtol: 1e-5 }, `${estimator} grads`);
    });
  }

  it('k3 is never negative', () => {
    const wide = randomNormal(4096, rand, 5);
    const out = klPenalty({ logprobs: wide, refLogprobs: randomNormal(4096, rand, 5) });
    expect(Math.min(...out.values)).toBeGreaterThanOrEqual(0);
  });

  it('clamp bounds the value and zeroes the gradient where active', () => {
    const out = klPenalty({
      logprobs: Float32Array.of(-10, -1),
      refLogprobs: Float32Array.of(-1, -1.5),
      estimator: 'k3',
      clamp: 5,
    });
    // k3(d = -9) = e^9 - 10 >> 5: clamped; k3(d = 0.5) = e^-0.5 - 0.5 = 0.1065: not clamped.
    expect(out.values[0]).toBe(5);
    expect(out.grads![0]).toBe(0);
    expect(out.values[1]).toBeCloseTo(Math.exp(-0.5) - 0.5, 6);
    expect(out.grads![1]).toBeCloseTo(1 - Math.exp(-0.5), 6);
  });

  it('withGrad: false returns only values', () => {
    const out = klPenalty({ logprobs, refLogprobs, withGrad: false });
    expect(out.grads).toBeUndefined();
    expect(maxAbs(out.values)).toBeGreaterThan(0);
  });
});
