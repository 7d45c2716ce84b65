import { ops } from '@othink/native';
import { expectClose, maxAbs, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { layerNorm, QWEN2VL_NORM_EPS, rmsNorm, Tensor, tidy } from '../src/index.js';
import { gradcheck } from './gradcheck.js';

// Qwen2-VL's epsilon for RMSNorm (spec §3.2) and the vision LayerNorms (spec §2.5, §2.6).
const EPS = 1e-6;
// float32's unit roundoff (half an ulp of 1): each float32 rounding is off by at most this, relatively.
const U = 2 ** -24;

/** RMSNorm in float64 from the definition: x / sqrt(mean(x^2) + eps) * w, and its gradients. */
function rmsNormRef(x: Float32Array, w: Float32Array, g: Float32Array | null, eps: number) {
  const h = w.length;
  const rows = x.length / h;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(h);
  // sum_r |g x_hat| per column: each term of dw carries two float32 roundings (rstd, x * rstd).
  const dwBound = new Float64Array(h);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < h; j++) ss += x[r * h + j] ** 2;
    const s = 1 / Math.sqrt(ss / h + eps);
    let dot = 0;
    for (let j = 0; j < h; j++) {
      const i = r * h + j;
      y[i] = x[i] * s * w[j];
      if (g) {
        dot += g[i] * w[j] * x[i] * s;
        dw[j] += g[i] * x[i] * s;
        dwBound[j] += Math.abs(g[i] * x[i] * s);
      }
    }
    // d/dx_k of x_j s: s (delta_jk - x_j x_k s^2 / h)
    if (g)
      for (let j = 0; j < h; j++) dx[r * h + j] = s * (g[r * h + j] * w[j] - x[r * h + j] * s * (dot / h));
  }
  return { y, dx, dw, dwBound };
}

/** LayerNorm in float64 from the definition (biased variance), and its gradients. */
function layerNormRef(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  g: Float32Array | null,
  eps: number,
) {
  const h = w.length;
  const rows = x.length / h;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(h);
  const db = new Float64Array(h);
  // sum_r |g| (|x| + |mean|) rstd per column: the float32 x_hat = (x - mean) * rstd of each term of
  // dw is off by a few roundings of |x| + |mean| (the mean is rounded to float32 first), times rstd.
  const dwBound = new Float64Array(h);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let j = 0; j < h; j++) mu += x[r * h + j];
    mu /= h;
    let v = 0;
    for (let j = 0; j < h; j++) v += (x[r * h + j] - mu) ** 2;
    const s = 1 / Math.sqrt(v / h + eps);
    let sumGw = 0;
    let dot = 0;
    for (let j = 0; j < h; j++) {
      const i = r * h + j;
      const xhat = (x[i] - mu) * s;
      y[i] = xhat * w[j] + b[j];
      if (g) {
        sumGw += g[i] * w[j];
        dot += g[i] * w[j] * xhat;
        dw[j] += g[i] * xhat;
        db[j] += g[i];
        dwBound[j] += Math.abs(g[i]) * (Math.abs(x[i]) + Math.abs(mu)) * s;
      }
    }
    if (g) {
      for (let j = 0; j < h; j++) {
        const i = r * h + j;
        dx[i] = s * (g[i] * w[j] - sumGw / h - (x[i] - mu) * s * (dot / h));
      }
    }
  }
  return { y, dx, dw, db, dwBound };
}

function normal(n: number, seed: number, std = 1, offset = 0): Float32Array {
  return randomNormal(n, seededRandom(seed), std).map((v) => v + offset);
}

/** Runs `f` with gradient `g` on fresh leaves and returns the output and every input's gradient. */
function forwardBackward(
  f: (...t: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  g: Float32Array,
): { y: Float32Array; grads: Float32Array[] } {
  return tidy(() => {
    const ts = inputs.map((i) => Tensor.from(i.data, i.shape, { requiresGrad: true }));
    const out = f(...ts);
    out.backward(Tensor.from(g, out.shape));
    return { y: out.toFloat32Array(), grads: ts.map((t) => t.grad!.toFloat32Array()) };
  });
}

describe('rmsNorm', () => {
  it('matches the float64 definition, forward and backward, on odd and Qwen2-VL-sized rows', () => {
    // [3, 5, 7]: one row per thread-free loop; [64, 1536]: the LLM width, past the kernels'
    // 64K-element threshold, so the row loops and the 24 column blocks of dw run in parallel.
    for (const [shape, seed] of [
      [[3, 5, 7], 1],
      [[64, 1536], 2],
    ] as const) {
      const h = shape.at(-1)!;
      const n = shape.reduce((a, b) => a * b, 1);
      const x = normal(n, seed, 2);
      const w = normal(h, seed + 10, 0.5, 1);
      const g = normal(n, seed + 20);
      const ref = rmsNormRef(x, w, g, EPS);
      const got = forwardBackward(
        (a, b) => rmsNorm(a, b, EPS),
        [
          { data: x, shape: [...shape] },
          { data: w, shape: [h] },
        ],
        g,
      );
      // y = (x * rstd) * w is a product: rstd (float64 then rounded), x * rstd and * w are three
      // float32 roundings, so |error| <= 3U |y| (+ the float64 sum's ~1e-16); 4U leaves margin.
      expectClose(got.y, ref.y, { rtol: 4 * U, atol: 1e-30 }, `rmsNorm y ${shape}`);
      // dx = rstd (g w - x_hat c): about six float32 roundings of terms no larger than the largest
      // |dx| here (the row dot c is float64); 8U of max |dx| bounds it (measured: <= 1.6U).
      expectClose(got.grads[0], ref.dx, { atol: 8 * U * maxAbs(ref.dx) }, `rmsNorm dx ${shape}`);
      // dw: float64 column sums of g * x_hat, each term off by <= 2U (two roundings), then one
      // rounding of the sum: |error| <= 2U sum|g x_hat| + U |dw| <= 3U max_j sum_r |g x_hat|.
      expectClose(got.grads[1], ref.dw, { atol: 3 * U * maxAbs(ref.dwBound) }, `rmsNorm dw ${shape}`);
    }
  });

  it('finite-difference gradients for x and weight, eps 1e-6', () => {
    gradcheck((x, w) => rmsNorm(x, w, EPS), [{ shape: [3, 5, 7] }, { shape: [7] }]);
    // A rank-1 x is one row. (Width 1 is left out: there y = sign(x) w, flat, and the finite
    // difference measures only rounding noise.)
    gradcheck((x, w) => rmsNorm(x, w, EPS), [{ shape: [3] }, { shape: [3] }], { seed: 3 });
    gradcheck((x, w) => rmsNorm(x, w, EPS), [{ shape: [2, 33] }, { shape: [33], constant: true }], {
      seed: 4,
    });
  });

  it('eps 1e-6 is the default (spec §3.2) and keeps an all-zero row finite', () => {
    expect(QWEN2VL_NORM_EPS).toBe(1e-6);
    const x = new Float32Array([0, 0, 0, 1e-4, -2e-4, 3e-4]);
    const w = new Float32Array([1, 2, 3]);
    const y = tidy(() => rmsNorm(Tensor.from(x, [2, 3]), Tensor.from(w, [3])).toFloat32Array());
    expectClose(y, rmsNormRef(x, w, null, 1e-6).y, { rtol: 4 * U, atol: 1e-30 }, 'eps default');
    expect(Array.from(y.slice(0, 3))).toEqual([0, 0, 0]);
    // With eps = 0 the tiny row would be normalised to unit RMS; with 1e-6 it stays small.
    expect(maxAbs(y.slice(3))).toBeLessThan(1);
  });

  it('empty inputs give empty outputs and zero gradients', () => {
    const gw = tidy(() => {
      const w = Tensor.from([1, 2], [2], { requiresGrad: true });
      const y = rmsNorm(Tensor.zeros([0, 2]), w);
      expect(y.shape).toEqual([0, 2]);
      y.backward(Tensor.zeros([0, 2]));
      return w.grad!.toFloat32Array();
    });
    expect(Array.from(gw)).toEqual([0, 0]);
  });

  it('bad inputs: width mismatch names both shapes, dtype, eps, and the kernel checks lengths', () => {
    expect(() => tidy(() => rmsNorm(Tensor.zeros([3, 5, 7]), Tensor.zeros([6])))).toThrow(
      'rmsNorm: weight [6] does not match the last dimension of x [3, 5, 7]',
    );
    expect(() => tidy(() => rmsNorm(Tensor.zeros([2, 3], { dtype: 'int32' }), Tensor.zeros([3])))).toThrow(
      'rmsNorm: x has dtype int32, expected float32',
    );
    expect(() => tidy(() => rmsNorm(Tensor.zeros([2, 3]), Tensor.zeros([3]), -1))).toThrow(/eps must be/);
    const rmsNormKernel = ops.rmsNorm;
    expect(() =>
      rmsNormKernel({
        x: new Float32Array(10),
        weight: new Float32Array(4),
        out: new Float32Array(8),
        rstd: new Float32Array(2),
        rows: 2,
        hidden: 4,
        eps: EPS,
      }),
    ).toThrow('ops.rmsNorm: x has 10 elements; expected 8 ([rows, hidden] = [2, 4])');
    expect(() =>
      ops.rmsNormBackward({
        grad: new Float32Array(8),
        x: new Float32Array(8),
        weight: new Float32Array(4),
        rstd: new Float32Array(3),
        rows: 2,
        hidden: 4,
      }),
    ).toThrow('ops.rmsNormBackward: rstd has 3 elements; expected 2 ([rows] = [2])');
  });
});

describe('layerNorm', () => {
  it('matches the float64 definition, forward and backward, with an offset mean', () => {
    for (const [shape, seed] of [
      [[3, 5, 7], 5],
      [[50, 1280], 6], // the vision width; parallel paths as above
    ] as const) {
      const h = shape.at(-1)!;
      const n = shape.reduce((a, b) => a * b, 1);
      // Rows centred at 3 with std 1.5: x - mean cancels about two bits, as in real activations.
      const x = normal(n, seed, 1.5, 3);
      const w = normal(h, seed + 10, 0.5, 1);
      const b = normal(h, seed + 30, 0.5);
      const g = normal(n, seed + 20);
      const ref = layerNormRef(x, w, b, g, EPS);
      const got = forwardBackward(
        (a, ww, bb) => layerNorm(a, ww, bb, EPS),
        [
          { data: x, shape: [...shape] },
          { data: w, shape: [h] },
          { data: b, shape: [h] },
        ],
        g,
      );
      // x - mean is computed in float32 from the float32-rounded mean: its error is up to 2U of
      // |x| + |mean| <= ~10, i.e. ~20U * rstd (~0.7) absolute in x_hat, times |w| <= ~2.5; the
      // products and + b add a few U of |y| <= ~8. 64U (3.8e-6) absolute bounds the sum
      // (measured: <= 15U).
      expectClose(got.y, ref.y, { atol: 64 * U }, `layerNorm y ${shape}`);
      // dx = rstd (g w - mean(g w) - x_hat c): the x_hat error above plus a few roundings of terms
      // no larger than max |dx|; 16U of max |dx| (measured: <= 2.2U).
      expectClose(got.grads[0], ref.dx, { atol: 16 * U * maxAbs(ref.dx) }, `layerNorm dx ${shape}`);
      // dw: float64 column sums of g * x_hat with each x_hat off by <= 3U (|x| + |mean|) rstd.
      expectClose(got.grads[1], ref.dw, { atol: 4 * U * maxAbs(ref.dwBound) }, `layerNorm dw ${shape}`);
      // db = sum_rows g: exact float32 inputs summed in float64, one rounding at the end.
      expectClose(got.grads[2], ref.db, { rtol: U, atol: 1e-30 }, `layerNorm db ${shape}`);
    }
  });

  it('finite-difference gradients for x, weight and bias, eps 1e-6', () => {
    gradcheck((x, w, b) => layerNorm(x, w, b, EPS), [{ shape: [3, 5, 7] }, { shape: [7] }, { shape: [7] }]);
    gradcheck(
      (x, w, b) => layerNorm(x, w, b, EPS),
      [{ shape: [4, 9] }, { shape: [9], constant: true }, { shape: [9] }],
      { seed: 7 },
    );
  });

  it('a constant row (zero variance) stays finite: y = bias, rstd = 1 / sqrt(eps)', () => {
    const x = new Float32Array([2, 2, 2, 2, 2]);
    const w = new Float32Array([1, -1, 2, 0.5, 3]);
    const b = new Float32Array([0.1, 0.2, 0.3, 0.4, 0.5]);
    const g = new Float32Array([1, 2, 3, 4, 5]);
    const got = forwardBackward(
      (a, ww, bb) => layerNorm(a, ww, bb),
      [
        { data: x, shape: [1, 5] },
        { data: w, shape: [5] },
        { data: b, shape: [5] },
      ],
      g,
    );
    const ref = layerNormRef(x, w, b, g, 1e-6);
    expectClose(got.y, ref.y, { rtol: U }, 'constant row y');
    // dx = rstd (g w - mean(g w)) with rstd = 1000: exact float inputs, a few roundings of ~1e4.
    expectClose(got.grads[0], ref.dx, { atol: 8 * U * maxAbs(ref.dx) }, 'constant row dx');
  });

  it('bad inputs name both shapes', () => {
    expect(() => tidy(() => layerNorm(Tensor.zeros([2, 5]), Tensor.zeros([5]), Tensor.zeros([4])))).toThrow(
      'layerNorm: bias [4] does not match the last dimension of x [2, 5]',
    );
    expect(() =>
      tidy(() => layerNorm(Tensor.zeros([2, 5]), Tensor.zeros([2, 5]), Tensor.zeros([5]))),
    ).toThrow('layerNorm: weight [2, 5] does not match the last dimension of x [2, 5]');
    expect(() =>
      tidy(() => layerNorm(Tensor.zeros([2, 5]), Tensor.zeros([5]), Tensor.zeros([5], { dtype: 'int32' }))),
    ).toThrow('layerNorm: bias has dtype int32, expected float32');
    expect(() =>
      ops.layerNorm({
        x: new Float32Array(10),
        weight: new Float32Array(5),
        bias: new Float32Array(4),
        out: new Float32Array(10),
        mean: new Float32Array(2),
        rstd: new Float32Array(2),
        rows: 2,
        hidden: 5,
        eps: EPS,
      }),
    ).toThrow('ops.layerNorm: bias has 4 elements; expected 5 ([hidden] = [5])');
  });
});
