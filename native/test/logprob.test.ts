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
import { tokenLogprobs, tokenLogprobsBackward } from '../index.js';
import { logprobsF64 } from './reference.js';

const CASES = fixtureCases('grpo');

describe('tokenLogprobs vs the grpo fixtures', () => {
  for (const name of CASES) {
    it(`${name}: per-token log-probs`, () => {
      const f = new Fixture(`grpo/${name}.safetensors`);
      const [, , vocab] = f.shape('logits');
      const out = tokenLogprobs({
        logits: f.f32('logits'),
        targets: f.i32('completion_ids'),
        vocabSize: vocab,
      });
      // Float32 logits and float32 accumulation of V terms against a float64 reference.
      expectClose(out.logprobs, f.f64('per_token_logps'), { atol: 1e-5, rtol: 1e-5 }, 'logprobs');
      for (const lp of out.logprobs) expect(lp).toBeLessThanOrEqual(0);
    });

    it(`${name}: backward of the grpo loss gives the fixture's d loss / d logits`, () => {
      const f = new Fixture(`grpo/${name}.safetensors`);
      const [, , vocab] = f.shape('logits');
      const logits = f.f32('logits');
      const targets = f.i32('completion_ids');
      const { lse } = tokenLogprobs({ logits, targets, vocabSize: vocab });
      const dlogits = tokenLogprobsBackward({
        logits,
        targets,
        lse,
        vocabSize: vocab,
        gradLogprobs: f.f32('grad_logps.grpo'),
      });
      const ref = f.f64('grad_logits.grpo');
      // Fixture README section 6: grad_logits within 1e-3 * max|ref|.
      expectClose(dlogits, ref, { atol: 1e-3 * maxAbs(ref) }, 'grad_logits.grpo');
    });
  }
});

describe('tokenLogprobs options', () => {
  const rand = seededRandom(1);
  const n = 5;
  const vocab = 4099; // not a multiple of the kernel's block size
  const logits = randomNormal(n * vocab, rand, 3);
  const targets = Int32Array.from({ length: n }, (_, i) => (i * 977) % vocab);

  it('entropy and temperature match a float64 reference', () => {
    for (const temperature of [1, 0.7, 2.5]) {
      const out = tokenLogprobs({ logits, targets, vocabSize: vocab, temperature, withEntropy: true });
      const ref = logprobsF64(logits, targets, vocab, temperature);
      expectClose(out.logprobs, ref.logprobs, { atol: 1e-5, rtol: 1e-5 }, `logprobs T=${temperature}`);
      expectClose(out.lse, ref.lse, { atol: 1e-5, rtol: 1e-6 }, `lse T=${temperature}`);
      expectClose(out.entropy!, ref.entropy, { atol: 1e-5, rtol: 1e-5 }, `entropy T=${temperature}`);
    }
  });

  it('handles -inf (masked) logits, also in a whole leading block', () => {
    const v = 5000;
    const masked = new Float32Array(v).fill(Number.NEGATIVE_INFINITY);
    masked[4500] = 1;
    masked[4999] = 2;
    const out = tokenLogprobs({
      logits: masked,
      targets: Int32Array.of(4999),
      vocabSize: v,
      withEntropy: true,
    });
    const p = Math.exp(2) / (Math.exp(1) + Math.exp(2));
    expect(out.logprobs[0]).toBeCloseTo(Math.log(p), 6);
    expect(out.entropy![0]).toBeCloseTo(-(p * Math.log(p) + (1 - p) * Math.log(1 - p)), 6);
    const d = tokenLogprobsBackward({
      logits: masked,
      targets: Int32Array.of(4999),
      vocabSize: v,
      lse: out.lse,
      entropy: out.entropy,
      gradLogprobs: Float32Array.of(1),
      gradEntropy: Float32Array.of(1),
    });
    expect(d.every(Number.isFinite)).toBe(true);
    expect(Math.abs(d[0])).toBe(0);
    // d logp / dz = onehot - p;  d H / dz_j = -p_j (log p_j + H)
    const h = out.entropy![0];
    expect(d[4999]).toBeCloseTo(1 - p - p * (Math.log(p) + h), 5);
    expect(d[4500]).toBeCloseTo(-(1 - p) - (1 - p) * (Math.log(1 - p) + h), 5);
  });

  it('re-centres correctly when the max grows from block to block (by less and by more than 64)', () => {
    const v = 11000; // six blocks of 2048
    const rand2 = seededRandom(9);
    const row = randomNormal(v, rand2, 1);
    row[3000] = 30; // block 1: +30 over the running max, summed against the lagging max
    row[7000] = 200; // block 3: +170, summed again against its own max
    row[9000] = 199.5;
    for (const t of [0, 3000, 7000, 9000]) {
      const out = tokenLogprobs({ logits: row, targets: Int32Array.of(t), vocabSize: v, withEntropy: true });
      const ref = logprobsF64(row, [t], v);
      expectClose(out.logprobs, ref.logprobs, { atol: 1e-5, rtol: 1e-6 }, `logprob of ${t}`);
      expectClose(out.entropy!, ref.entropy, { atol: 1e-5, rtol: 1e-5 }, `entropy (target ${t})`);
    }
  });

  it('is stable for huge logits', () => {
    const big = Float32Array.of(1000, 999, -1000);
    const out = tokenLogprobs({ logits: big, targets: Int32Array.of(1), vocabSize: 3 });
    expect(out.logprobs[0]).toBeCloseTo(-1 - Math.log1p(Math.exp(-1)), 5);
  });

  it('ignoreIndex rows give 0 and a zero gradient', () => {
    const t = Int32Array.from(targets);
    t[2] = -100;
    const out = tokenLogprobs({ logits, targets: t, vocabSize: vocab, ignoreIndex: -100 });
    expect(out.logprobs[2]).toBe(0);
    const d = tokenLogprobsBackward({
      logits,
      targets: t,
      lse: out.lse,
      vocabSize: vocab,
      ignoreIndex: -100,
      gradLogprobs: new Float32Array(n).fill(1),
    });
    expect(maxAbs(d.subarray(2 * vocab, 3 * vocab))).toBe(0);
    expect(maxAbs(d.subarray(0, vocab))).toBeGreaterThan(0);
  });

  it('in place overwrites the logits with the same dlogits', () => {
    const copy = Float32Array.from(logits);
    const out = tokenLogprobs({ logits, targets, vocabSize: vocab });
    const g = randomNormal(n, rand);
    const fresh = tokenLogprobsBackward({ logits, targets, lse: out.lse, vocabSize: vocab, gradLogprobs: g });
    const same = tokenLogprobsBackward({
      logits: copy,
      targets,
      lse: out.lse,
      vocabSize: vocab,
      gradLogprobs: g,
      inPlace: true,
    });
    expect(same).toBe(copy);
    expect(Array.from(same)).toEqual(Array.from(fresh));
  });
});

describe('tokenLogprobsBackward vs finite differences', () => {
  it('d(sum g*logprob + sum u*entropy)/dlogits with a temperature', () => {
    const rand = seededRandom(2);
    const n = 3;
    const vocab = 37;
    const temperature = 0.8;
    const logits = randomNormal(n * vocab, rand, 2);
    const targets = Int32Array.of(0, 17, 36);
    const g = randomNormal(n, rand);
    const u = randomNormal(n, rand);
    const fwd = tokenLogprobs({ logits, targets, vocabSize: vocab, temperature, withEntropy: true });
    const d = tokenLogprobsBackward({
      logits,
      targets,
      vocabSize: vocab,
      temperature,
      lse: fwd.lse,
      entropy: fwd.entropy,
      gradLogprobs: g,
      gradEntropy: u,
    });
    // The objective in float64 from the float32 kernel's forward; h = 1e-2 keeps float32 noise
    // (~1e-7 / 1e-2) well below the tolerance while the O(h^2) error stays ~1e-5.
    const objective = (x: Float64Array) => {
      const o = tokenLogprobs({
        logits: Float32Array.from(x),
        targets,
        vocabSize: vocab,
        temperature,
        withEntropy: true,
      });
      let s = 0;
      for (let i = 0; i < n; i++) s += g[i] * o.logprobs[i] + u[i] * o.entropy![i];
      return s;
    };
    const fd = finiteDifference(objective, Float64Array.from(logits), 1e-2);
    expectClose(d, fd, { atol: 2e-4 * maxAbs(fd) + 1e-5 }, 'dlogits');
  });
});
