import { expectClose, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { AdamW, clipGradNorm, gradNorm, Tensor, tidy } from '../src/index.js';

/** torch.optim.AdamW (single-tensor path) in float64. */
function adamwF64(
  p: number[],
  grads: number[][],
  lr: number,
  b1: number,
  b2: number,
  eps: number,
  wd: number,
) {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= (lr / (1 - b1 ** t)) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + eps));
    }
  });
  return p;
}

describe('AdamW', () => {
  it('three steps match torch.optim.AdamW in float64', () => {
    const rand = seededRandom(3);
    const init = randomNormal(37, rand);
    const grads = [randomNormal(37, rand), randomNormal(37, rand, 0.01), randomNormal(37, rand, 3)];
    const param = Tensor.from(init, [37], { requiresGrad: true });
    const opt = new AdamW([param], { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
    for (const g of grads) {
      param.grad?.dispose();
      param.grad = Tensor.from(g, [37]);
      opt.update();
    }
    const ref = adamwF64(
      Array.from(init),
      grads.map((g) => Array.from(g)),
      1e-3,
      0.9,
      0.999,
      1e-8,
      0.01,
    );
    // Each step moves a weight by ~lr = 1e-3; float32 rounding of |p| ~ 1 is 6e-8 per operation.
    expectClose(param.toFloat32Array(), ref, { atol: 1e-6 }, 'params after 3 steps');
    expect(opt.step).toBe(3);
    opt.dispose();
    param.zeroGrad();
    param.dispose();
  });

  it('skips parameters without gradients; rejects non-float32 parameters', () => {
    tidy(() => {
      const a = Tensor.from([1, 2], [2], { requiresGrad: true });
      const opt = new AdamW([a], { lr: 0.1 });
      opt.update();
      expect(Array.from(a.toFloat32Array())).toEqual([1, 2]);
      opt.dispose();
      expect(() => new AdamW([Tensor.from(Int32Array.of(1), [1])])).toThrow(/params\[0\] has dtype int32/);
    });
  });

  it('state round-trips through loadState', () => {
    tidy(() => {
      const a = Tensor.from([1, 2, 3], [3], { requiresGrad: true });
      const b = Tensor.from([1, 2, 3], [3], { requiresGrad: true });
      const oa = new AdamW([a], { lr: 0.01 });
      const ob = new AdamW([b], { lr: 0.01 });
      a.grad = Tensor.from([0.5, -1, 2], [3]);
      b.grad = Tensor.from([0.5, -1, 2], [3]);
      oa.update();
      const st = oa.state();
      ob.loadState({
        step: st.step,
        moments: st.moments.map(({ m, v }) => ({ m: m.toFloat32Array(), v: v.toFloat32Array() })),
      });
      b.storage.write(a.toFloat32Array());
      oa.update();
      ob.update();
      expect(Array.from(b.toFloat32Array())).toEqual(Array.from(a.toFloat32Array()));
      oa.dispose();
      ob.dispose();
      a.zeroGrad();
      b.zeroGrad();
    });
  });
});

describe('gradient clipping', () => {
  it('global norm over all gradients, scaled to maxNorm (torch clip_grad_norm_)', () => {
    tidy(() => {
      const a = Tensor.from([3, 0], [2], { requiresGrad: true });
      const b = Tensor.from([0], [1], { requiresGrad: true });
      const c = Tensor.from([7], [1], { requiresGrad: true });
      a.grad = Tensor.from([3, 4], [2]);
      b.grad = Tensor.from([12], [1]);
      expect(gradNorm([a, b, c]).totalNorm).toBe(13);
      const norm = clipGradNorm([a, b, c], 1);
      expect(norm.totalNorm).toBe(13);
      expect(norm.clipCoef).toBeCloseTo(1 / (13 + 1e-6), 12);
      expectClose(a.grad.toFloat32Array(), [3 / 13, 4 / 13], { atol: 1e-7 }, 'a.grad');
      expect(gradNorm([a, b]).totalNorm).toBeCloseTo(1, 5);
      expect(clipGradNorm([a, b], 10).clipCoef).toBe(1);
      expect(() => clipGradNorm([a], 0)).toThrow(/maxNorm must be > 0/);
      for (const t of [a, b]) t.zeroGrad();
    });
  });
});
