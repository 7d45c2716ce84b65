import { ops } from '@othink/native';
import { expectClose, maxAbs, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { gelu, quickGelu, swiglu, Tensor, tidy } from '../src/index.js';
import { gradcheck } from './gradcheck.js';

// float32's unit roundoff (half an ulp of 1).
const U = 2 ** -24;

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * erf in float64 from the series erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (1 * 3 * ... * (2n+1))
 * (Abramowitz & Stegun 7.1.6): all terms positive for x > 0, so no cancellation; relative error
 * ~1e-15 for |x| <= 6, far below float32's.
 */
function erf(x: number): number {
  if (x === 0) return 0;
  const a = Math.abs(x);
  if (a > 6) return Math.sign(x);
  let term = a;
  let sum = a;
  for (let n = 1; term > sum * 1e-17; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * ((2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum);
}

// The definitions (spec §2.5, §2.6, §3.4) and their derivatives, in float64.
const ref = {
  silu: (a: number) => a * sigmoid(a),
  dsilu: (a: number) => sigmoid(a) * (1 + a * (1 - sigmoid(a))),
  quickGelu: (x: number) => x * sigmoid(1.702 * x),
  dquickGelu: (x: number) => {
    const s = sigmoid(1.702 * x);
    return s + 1.702 * x * s * (1 - s);
  },
  gelu: (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  dgelu: (x: number) =>
    0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
};

/** n values uniform in [-lim, lim] (odd n: the kernels' 16-lane vectors end in a partial one). */
function uniform(n: number, seed: number, lim = 5): Float32Array {
  const rand = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (2 * rand() - 1) * lim);
}

function run(f: (...t: Tensor[]) => Tensor, inputs: Float32Array[], shape: number[], g: Float32Array) {
  return tidy(() => {
    const ts = inputs.map((d) => Tensor.from(d, shape, { requiresGrad: true }));
    const out = f(...ts);
    out.backward(Tensor.from(g, shape));
    return { y: out.toFloat32Array(), grads: ts.map((t) => t.grad!.toFloat32Array()) };
  });
}

// Sizes: [3, 5, 7] (105 elements: six vectors and a partial one) and 70001 elements (over the
// kernels' 64K-element threshold: the OpenMP path, with a partial last vector).
const SHAPES = [[3, 5, 7], [70001]];

describe('swiglu', () => {
  it('matches silu(gate) * up in float64, forward and backward', () => {
    for (const shape of SHAPES) {
      const n = shape.reduce((a, b) => a * b, 1);
      const gate = uniform(n, 1, 8);
      const up = uniform(n, 2, 3);
      const g = uniform(n, 3, 1);
      const got = run(swiglu, [gate, up], shape, g);
      const y = gate.map((a, i) => ref.silu(a) * up[i]);
      // A chain of products: exp (simd::exp, <= 2.5e-7 = 4.2U relative), 1 + e and the division
      // (2U), * gate, * up (2U): <= 8.2U relative with no cancellation; 10U.
      expectClose(got.y, Float64Array.from(y), { rtol: 10 * U, atol: 1e-30 }, `swiglu y ${shape}`);
      // d gate = g up s (1 + a (1 - s)): the factor 1 + a(1 - s) crosses 0 near a = -1.28, so the
      // bound is absolute. 1 - s carries the absolute error of s (~6U), times |a| where
      // |a|(1 - s) matters (|a| <= ~4 there, as 1 - s < 0.02 beyond): ~(10 + 6 * 4)U of
      // |g up|; 32U of max |g up| (measured: 8U).
      const dgate = Float64Array.from(gate, (a, i) => g[i] * up[i] * ref.dsilu(a));
      const gu = maxAbs(g.map((v, i) => v * up[i]));
      expectClose(got.grads[0], dgate, { atol: 32 * U * gu }, `swiglu dgate ${shape}`);
      // d up = g silu(gate): a product chain as the forward; 10U relative.
      const dup = Float64Array.from(gate, (a, i) => g[i] * ref.silu(a));
      expectClose(got.grads[1], dup, { rtol: 10 * U, atol: 1e-30 }, `swiglu dup ${shape}`);
    }
  });

  it('finite-difference gradients for gate and up', () => {
    gradcheck(swiglu, [{ shape: [3, 5, 7] }, { shape: [3, 5, 7] }]);
    gradcheck(swiglu, [{ shape: [17] }, { shape: [17], constant: true }], { seed: 2 });
  });

  it('saturates without NaN far from 0', () => {
    const y = tidy(() =>
      swiglu(Tensor.from([-100, 100, -1e30, 0], [4]), Tensor.from([1, 1, 1, 1], [4])).toFloat32Array(),
    );
    expect(Math.abs(y[0])).toBeLessThan(1e-30);
    expect(y[1]).toBe(100);
    expect(Math.abs(y[2])).toBeLessThan(1e-5);
    expect(y[3]).toBe(0);
  });

  it('bad inputs: shapes named, dtype, kernel lengths', () => {
    expect(() => tidy(() => swiglu(Tensor.zeros([2, 3]), Tensor.zeros([3, 2])))).toThrow(
      'swiglu: gate [2, 3] and up [3, 2] must have the same shape',
    );
    expect(() => tidy(() => swiglu(Tensor.zeros([2]), Tensor.zeros([2], { dtype: 'int32' })))).toThrow(
      'swiglu: up has dtype int32, expected float32',
    );
    expect(() =>
      ops.swiglu({ gate: new Float32Array(4), up: new Float32Array(3), out: new Float32Array(4) }),
    ).toThrow('ops.swiglu: up has 3 elements; expected 4 (the size of gate)');
  });
});

describe('quickGelu and gelu', () => {
  it('quickGelu matches x * sigmoid(1.702 x) in float64, forward and backward', () => {
    for (const shape of SHAPES) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = uniform(n, 4);
      const g = uniform(n, 5, 1);
      const got = run(quickGelu, [x], shape, g);
      // Besides the product chain of swiglu (8.2U), z = 1.702 x is rounded twice (the float32
      // constant and the product): 2U|z| of the argument moves s by 2U|z|(1 - s) relative,
      // |z| <= 8.5 here; 10U + 17U < 32U (measured: 12U).
      expectClose(
        got.y,
        Float64Array.from(x, ref.quickGelu),
        { rtol: 32 * U, atol: 1e-30 },
        `quickGelu y ${shape}`,
      );
      // s + 1.702 x s (1 - s) crosses 0 near x = -0.94: absolute. s carries ~(8 + 2|z|(1 - s))U
      // relative, and 1.702 x s (1 - s) <= 1.1 in size (its 1 - s absolute error is damped by
      // s(1 - s) <= 1/4 of |z|); 32U of max |g| (measured: 10U).
      expectClose(
        got.grads[0],
        Float64Array.from(x, (v, i) => g[i] * ref.dquickGelu(v)),
        { atol: 32 * U * maxAbs(g) },
        `quickGelu dx ${shape}`,
      );
    }
  });

  it('gelu matches the exact erf form in float64, forward and backward', () => {
    for (const shape of SHAPES) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = uniform(n, 6);
      const g = uniform(n, 7, 1);
      const got = run(gelu, [x], shape, g);
      // Computed in float64 with the C library's erf and rounded once: <= U relative, plus the
      // float64 erf's error (~1e-16 absolute, i.e. <= 4e-10 relative to Phi(x) >= 3e-7 on [-5, 5]).
      expectClose(got.y, Float64Array.from(x, ref.gelu), { rtol: 2 * U, atol: 1e-30 }, `gelu y ${shape}`);
      // g * (Phi + x phi) in float64, rounded once; the factor crosses 0 near x = -0.75, where
      // the float64 cancellation is still ~1e-16 absolute.
      expectClose(
        got.grads[0],
        Float64Array.from(x, (v, i) => g[i] * ref.dgelu(v)),
        { rtol: 2 * U, atol: 1e-15 },
        `gelu dx ${shape}`,
      );
    }
  });

  it('gelu is the erf form, not the tanh approximation', () => {
    // -3 Phi(-3) and Phi(1) (Python's math.erf); the tanh form gives -0.0036373 and 0.8411920.
    const y = tidy(() => gelu(Tensor.from([-3, 1], [2])).toFloat32Array());
    expectClose(y, [-0.0040496940948904, 0.8413447460685429], { rtol: 2 * U }, 'gelu(-3), gelu(1)');
  });

  it('finite-difference gradients', () => {
    gradcheck(quickGelu, [{ shape: [3, 5, 7] }]);
    gradcheck(gelu, [{ shape: [3, 5, 7] }], { seed: 2 });
  });

  it('bad inputs: dtype and kernel lengths', () => {
    expect(() => tidy(() => gelu(Tensor.zeros([2], { dtype: 'int32' })))).toThrow(
      'gelu: x has dtype int32, expected float32',
    );
    expect(() =>
      ops.quickGeluBackward({
        grad: new Float32Array(5),
        x: new Float32Array(5),
        gradX: new Float32Array(4),
      }),
    ).toThrow('ops.quickGeluBackward: gradX has 4 elements; expected 5 (the size of grad)');
    expect(() => ops.gelu({ x: new Int32Array(2), out: new Float32Array(2) })).toThrow(
      /ops\.gelu: x must be a .*\(got Int32Array\)/,
    );
  });
});
