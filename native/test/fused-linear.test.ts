import { expectClose, finiteDifference, maxAbs, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { fusedLinearLogprobs, fusedLinearLogprobsBackward } from '../index.js';
import { linearF64, logprobsF64 } from './reference.js';

const rand = seededRandom(11);
const n = 13;
const h = 24;
const vocab = 517;
const hidden = randomNormal(n * h, rand, 1);
const weight = randomNormal(vocab * h, rand, 0.3);
const targets = Int32Array.from({ length: n }, (_, i) => (i * 131 + 7) % vocab);
const temperature = 0.9;

/** Float64 reference of the backward: dlogits = g (onehot - p) / T + u * dH/dlogits, then the two matmuls. */
function backwardF64(gradLogprobs: Float32Array, gradEntropy: Float32Array) {
  const logits = linearF64(hidden, weight, n, h, vocab);
  const { lse, entropy } = logprobsF64(logits, targets, vocab, temperature);
  const dlogits = new Float64Array(n * vocab);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < vocab; j++) {
      const d = logits[i * vocab + j] / temperature - lse[i];
      const p = Math.exp(d);
      dlogits[i * vocab + j] =
        (gradLogprobs[i] * ((j === targets[i] ? 1 : 0) - p) - gradEntropy[i] * p * (d + entropy[i])) /
        temperature;
    }
  const gradHidden = new Float64Array(n * h);
  const gradWeight = new Float64Array(vocab * h);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < vocab; j++) {
      const g = dlogits[i * vocab + j];
      for (let k = 0; k < h; k++) {
        gradHidden[i * h + k] += g * weight[j * h + k];
        gradWeight[j * h + k] += g * hidden[i * h + k];
      }
    }
  return { gradHidden, gradWeight };
}

describe('fusedLinearLogprobs', () => {
  const ref = logprobsF64(linearF64(hidden, weight, n, h, vocab), targets, vocab, temperature);

  for (const chunkSize of [1, 4, 13, 1000]) {
    it(`forward matches float64 (chunk ${chunkSize})`, () => {
      const out = fusedLinearLogprobs({
        hidden,
        weight,
        targets,
        hiddenSize: h,
        chunkSize,
        temperature,
        withEntropy: true,
      });
      expectClose(out.logprobs, ref.logprobs, { atol: 2e-5, rtol: 1e-5 }, 'logprobs');
      expectClose(out.lse, ref.lse, { atol: 2e-5, rtol: 1e-5 }, 'lse');
      expectClose(out.entropy!, ref.entropy, { atol: 2e-5, rtol: 1e-5 }, 'entropy');
    });
  }

  it('backward matches float64 for every chunk size, and gradWeight accumulates', () => {
    const g = randomNormal(n, rand);
    const u = randomNormal(n, rand);
    const expected = backwardF64(g, u);
    const fwd = fusedLinearLogprobs({
      hidden,
      weight,
      targets,
      hiddenSize: h,
      temperature,
      withEntropy: true,
    });
    for (const chunkSize of [1, 5, 13, 64]) {
      const out = fusedLinearLogprobsBackward({
        hidden,
        weight,
        targets,
        hiddenSize: h,
        chunkSize,
        temperature,
        lse: fwd.lse,
        entropy: fwd.entropy,
        gradLogprobs: g,
        gradEntropy: u,
      });
      expectClose(
        out.gradHidden!,
        expected.gradHidden,
        { atol: 1e-5 * maxAbs(expected.gradHidden) + 1e-7 },
        `gradHidden chunk ${chunkSize}`,
      );
      expectClose(
        out.gradWeight,
        expected.gradWeight,
        { atol: 1e-5 * maxAbs(expected.gradWeight) + 1e-7 },
        `gradWeight chunk ${chunkSize}`,
      );
    }
    const acc = new Float32Array(vocab * h).fill(0.5);
    const out = fusedLinearLogprobsBackward({
      hidden,
      weight,
      targets,
      hiddenSize: h,
      temperature,
      lse: fwd.lse,
      entropy: fwd.entropy,
      gradLogprobs: g,
      gradEntropy: u,
      gradWeight: acc,
      needGradHidden: false,
    });
    expect(out.gradWeight).toBe(acc);
    expect(out.gradHidden).toBeUndefined();
    expectClose(
      acc,
      expected.gradWeight.map((x) => x + 0.5),
      { atol: 1e-5 * maxAbs(expected.gradWeight) + 1e-6 },
      'accumulated gradWeight',
    );
  });

  it('backward matches finite differences of the forward (hidden and weight)', () => {
    const small = { n: 3, h: 5, v: 11 };
    const hs = randomNormal(small.n * small.h, rand);
    const ws = randomNormal(small.v * small.h, rand, 0.5);
    const ts = Int32Array.of(0, 5, 10);
    const g = Float32Array.of(0.7, -1.3, 0.4);
    const objective = (hh: Float32Array, ww: Float32Array) => {
      const o = fusedLinearLogprobs({ hidden: hh, weight: ww, targets: ts, hiddenSize: small.h });
      return o.logprobs.reduce((s, lp, i) => s + g[i] * lp, 0);
    };
    const fwd = fusedLinearLogprobs({ hidden: hs, weight: ws, targets: ts, hiddenSize: small.h });
    const out = fusedLinearLogprobsBackward({
      hidden: hs,
      weight: ws,
      targets: ts,
      hiddenSize: small.h,
      lse: fwd.lse,
      gradLogprobs: g,
      chunkSize: 2,
    });
    const fdH = finiteDifference((x) => objective(Float32Array.from(x), ws), Float64Array.from(hs), 1e-2);
    const fdW = finiteDifference((x) => objective(hs, Float32Array.from(x)), Float64Array.from(ws), 1e-2);
    expectClose(out.gradHidden!, fdH, { atol: 1e-3 * maxAbs(fdH) + 1e-5 }, 'gradHidden vs FD');
    expectClose(out.gradWeight, fdW, { atol: 1e-3 * maxAbs(fdW) + 1e-5 }, 'gradWeight vs FD');
  });

  it('ignoreIndex tokens contribute nothing to either gradient', () => {
    const t = Int32Array.from(targets);
    t.fill(-100, 5);
    const fwd = fusedLinearLogprobs({ hidden, weight, targets: t, hiddenSize: h, ignoreIndex: -100 });
    expect(Array.from(fwd.logprobs.subarray(5))).toEqual(new Array(n - 5).fill(0));
    const g = new Float32Array(n).fill(1);
    const out = fusedLinearLogprobsBackward({
      hidden,
      weight,
      targets: t,
      hiddenSize: h,
      ignoreIndex: -100,
      lse: fwd.lse,
      gradLogprobs: g,
    });
    expect(maxAbs(out.gradHidden!.subarray(5 * h))).toBe(0);
    const first5 = fusedLinearLogprobsBackward({
      hidden: hidden.subarray(0, 5 * h),
      weight,
      targets: t.subarray(0, 5),
      hiddenSize: h,
      lse: fwd.lse.subarray(0, 5),
      gradLogprobs: g.subarray(0, 5),
    });
    expectClose(out.gradWeight, first5.gradWeight, { atol: 1e-6 }, 'gradWeight of the kept tokens only');
  });
});
