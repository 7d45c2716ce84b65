import { expectClose, Fixture, fixtureCases, maxAbs, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  crossEntropy,
  linear,
  lmHeadLogprobs,
  logprobsFromLogits,
  noGrad,
  Tensor,
  tidy,
} from '../src/index.js';
import { gradcheck } from './gradcheck.js';

const ids = (values: number[]) => Float32Array.from(values);

describe('log-prob and cross-entropy ops', () => {
  it.each(fixtureCases('grpo'))('logprobsFromLogits matches the grpo fixture %s', (name) => {
    const f = new Fixture(`grpo/${name}.safetensors`);
    const [n, t, v] = f.shape('logits');
    const out = tidy(() =>
      logprobsFromLogits(
        Tensor.from(f.f32('logits'), [n, t, v]),
        Tensor.from(f.i32('completion_ids'), [n, t]),
      ).toFloat32Array(),
    );
    expectClose(out, f.f64('per_token_logps'), { atol: 1e-5, rtol: 1e-5 }, 'per_token_logps');
  });

  it('gradients: logits, and hidden + LM head through the fused kernel', () => {
    gradcheck(
      (logits, t) => logprobsFromLogits(logits, t, { temperature: 0.7 }),
      [
        { shape: [2, 3, 11] },
        { shape: [2, 3], dtype: 'int32', constant: true, data: ids([0, 4, 10, 3, 3, 7]) },
      ],
    );
    gradcheck(
      (h, w, t) => lmHeadLogprobs(h, w, t, { chunkSize: 2 }),
      [
        { shape: [5, 6] },
        { shape: [13, 6] },
        { shape: [5], dtype: 'int32', constant: true, data: ids([0, 12, 5, 5, 1]) },
      ],
    );
  });

  it('the fused LM head equals linear + log-softmax', () => {
    const rand = seededRandom(4);
    const h = randomNormal(7 * 8, rand);
    const w = randomNormal(30 * 8, rand, 0.5);
    const t = Int32Array.from([1, 29, 3, 3, 0, 17, 8]);
    const [fused, unfused] = tidy(() =>
      noGrad(() => {
        const hidden = Tensor.from(h, [7, 8]);
        const weight = Tensor.from(w, [30, 8]);
        const targets = Tensor.from(t, [7]);
        return [
          lmHeadLogprobs(hidden, weight, targets).toFloat32Array(),
          logprobsFromLogits(linear(hidden, weight), targets).toFloat32Array(),
        ];
      }),
    );
    expectClose(fused, unfused, { atol: 1e-5 }, 'fused vs unfused');
  });

  it('cross-entropy is the mean over non-ignored targets (-100)', () => {
    const rand = seededRandom(8);
    const logits = randomNormal(4 * 5, rand);
    const targets = Int32Array.from([2, -100, 4, 0]);
    const loss = tidy(() => crossEntropy(Tensor.from(logits, [4, 5]), Tensor.from(targets, [4])).item());
    let ref = 0;
    for (const i of [0, 2, 3]) {
      const row = Array.from(logits.subarray(i * 5, i * 5 + 5));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      ref += lse - row[targets[i]];
    }
    expect(loss).toBeCloseTo(ref / 3, 5);
    gradcheck(
      (x, t) => crossEntropy(x, t),
      [
        { shape: [4, 5], data: logits },
        { shape: [4], dtype: 'int32', constant: true, data: Float32Array.from(targets) },
      ],
    );
    const g = tidy(() => {
      const x = Tensor.from(logits, [4, 5], { requiresGrad: true });
      crossEntropy(x, Tensor.from(targets, [4])).backward();
      return x.grad!.toFloat32Array();
    });
    expect(maxAbs(g.subarray(5, 10))).toBe(0);
  });

  it('cross-entropy from an LM head counts the same targets (the count comes from the kernel)', () => {
    const rand = seededRandom(12);
    const h = randomNormal(5 * 6, rand);
    const w = randomNormal(9 * 6, rand, 0.5);
    const t = Int32Array.from([3, -100, 8, -100, 0]);
    const [fused, unfused] = tidy(() =>
      noGrad(() => {
        const hidden = Tensor.from(h, [5, 6]);
        const weight = Tensor.from(w, [9, 6]);
        const targets = Tensor.from(t, [5]);
        return [
          crossEntropy(hidden, targets, { lmHead: weight }).item(),
          crossEntropy(linear(hidden, weight), targets).item(),
        ];
      }),
    );
    // Both divide by the 3 targets that are not -100 (a count of 5 would shrink the loss by 3/5).
    expect(fused).toBeCloseTo(unfused, 5);
    const manual = tidy(() =>
      noGrad(
        () =>
          -Array.from(
            lmHeadLogprobs(Tensor.from(h, [5, 6]), Tensor.from(w, [9, 6]), Tensor.from(t, [5]), {
              ignoreIndex: -100,
            }).toFloat32Array(),
          ).reduce((a, x) => a + x, 0) / 3,
      ),
    );
    expect(fused).toBeCloseTo(manual, 6);
  });

  it('bfloat16 inputs need cuda; targets are checked against the vocabulary', () => {
    const targets = () => Tensor.from(Int32Array.of(1, 2), [2]);
    expect(() =>
      tidy(() => logprobsFromLogits(Tensor.zeros([2, 5], { dtype: 'bfloat16' }), targets())),
    ).toThrow(/logprobsFromLogits: logits is bfloat16 on cpu; bfloat16 log-probs run on cuda/);
    expect(() =>
      tidy(() =>
        lmHeadLogprobs(Tensor.zeros([2, 4]), Tensor.zeros([9, 4], { dtype: 'bfloat16' }), targets()),
      ),
    ).toThrow(/lmHeadLogprobs: weight has dtype bfloat16, expected float32/);
    expect(() =>
      tidy(() => logprobsFromLogits(Tensor.zeros([2, 5]), Tensor.from(Int32Array.of(1, 5), [2]))),
    ).toThrow(/tokenLogprobs: targets\[1\] = 5 is outside the vocabulary \[0, 5\)/);
    expect(() =>
      tidy(() =>
        lmHeadLogprobs(Tensor.zeros([2, 4]), Tensor.zeros([9, 4]), Tensor.from(Int32Array.of(-3, 0), [2])),
      ),
    ).toThrow(/fusedLinearLogprobs: targets\[0\] = -3 is outside the vocabulary \[0, 9\)/);
  });

  it('errors name the shapes', () => {
    expect(() =>
      tidy(() => logprobsFromLogits(Tensor.zeros([2, 5]), Tensor.from(Int32Array.of(1), [1]))),
    ).toThrow(/targets \[1\] must hold one id per row \(2\)/);
    expect(() =>
      tidy(() =>
        lmHeadLogprobs(Tensor.zeros([2, 4]), Tensor.zeros([9, 3]), Tensor.from(Int32Array.of(1, 2), [2])),
      ),
    ).toThrow(/weight \[9, 3\] must be \[vocab, 4\] for hidden \[2, 4\]/);
  });
});
