import { expectClose } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  add,
  concat,
  linear,
  matmul,
  mean,
  mul,
  narrow,
  scale,
  split,
  sub,
  sum,
  Tensor,
  tidy,
  writeSlice,
} from '../src/index.js';
import { gradcheck } from './gradcheck.js';

describe('arithmetic ops: finite-difference gradients', () => {
  it('add / sub / mul, same shape and broadcast over leading dims', () => {
    gradcheck((a, b) => add(a, b), [{ shape: [3, 4] }, { shape: [3, 4] }]);
    gradcheck((a, b) => sub(a, b), [{ shape: [2, 3, 4] }, { shape: [4] }]);
    gradcheck((a, b) => mul(a, b), [{ shape: [2, 3, 4] }, { shape: [3, 4] }]);
    gradcheck((a) => mul(a, a), [{ shape: [5] }]);
  });

  it('scale, sum and mean over every axis', () => {
    gradcheck((a) => scale(a, -2.5, 1), [{ shape: [3, 2] }]);
    for (const axis of [0, 1, 2, -1]) {
      gradcheck((a) => sum(a, axis), [{ shape: [2, 3, 4] }]);
      gradcheck((a) => mean(a, axis, true), [{ shape: [2, 3, 4] }]);
    }
  });
});

describe('matmul and linear: values and gradients', () => {
  const data = (n: number, k = 1) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + k) % 11) / 5 - 1);

  it('2-D products in all transpose combinations match a float64 product', () => {
    const [m, n, k] = [5, 3, 4];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = data(m * k);
        const b = data(k * n, 3);
        const out = tidy(() =>
          matmul(Tensor.from(a, transA ? [k, m] : [m, k]), Tensor.from(b, transB ? [n, k] : [k, n]), {
            transA,
            transB,
          }).toFloat32Array(),
        );
        const ref = new Float64Array(m * n);
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++)
            for (let p = 0; p < k; p++)
              ref[i * n + j] +=
                (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
        expectClose(out, ref, { atol: 1e-5 }, `matmul ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
        gradcheck(
          (x, y) => matmul(x, y, { transA, transB }),
          [{ shape: transA ? [k, m] : [m, k] }, { shape: transB ? [n, k] : [k, n] }],
        );
      }
    }
  });

  it('batched products, and a 2-D b shared by the batch', () => {
    gradcheck((a, b) => matmul(a, b), [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }]);
    gradcheck(
      (a, b) => matmul(a, b, { transA: true, transB: true }),
      [{ shape: [2, 4, 3] }, { shape: [2, 5, 4] }],
    );
    gradcheck((a, b) => matmul(a, b, { transB: true }), [{ shape: [2, 3, 4] }, { shape: [5, 4] }]);
    gradcheck((a, b) => matmul(a, b), [{ shape: [2, 3, 4] }, { shape: [4, 5] }]);
  });

  it('linear: x @ W^T + b over leading dimensions', () => {
    gradcheck((x, w, b) => linear(x, w, b), [{ shape: [2, 3, 4] }, { shape: [5, 4] }, { shape: [5] }]);
    expect(() => tidy(() => linear(Tensor.zeros([2, 3]), Tensor.zeros([5, 4])))).toThrow(
      /linear: x \[2, 3\] does not match weight \[5, 4\] \(\[out, in\]\)/,
    );
  });

  it('shape errors name both shapes', () => {
    expect(() => tidy(() => matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5])))).toThrow(
      /cannot multiply a \[2, 3\] by b \[4, 5\]/,
    );
    expect(() => tidy(() => add(Tensor.zeros([2, 3]), Tensor.zeros([2])))).toThrow(
      /b \[2\] must equal a \[2, 3\] or its trailing/,
    );
  });
});

describe('concat / split / narrow / slice / reshape', () => {
  it('gradients flow through every piece', () => {
    for (const axis of [0, 1, 2]) {
      gradcheck((a, b) => concat([a, b], axis), [{ shape: [2, 3, 2] }, { shape: [2, 3, 2] }]);
      gradcheck(
        (a) => mul(split(a, [1, 2], axis)[1], split(a, [1, 2], axis)[1]),
        [{ shape: [axis === 0 ? 3 : 2, axis === 1 ? 3 : 2, axis === 2 ? 3 : 2] }],
      );
    }
    gradcheck((a) => narrow(a, 1, 1, 2), [{ shape: [2, 4] }]);
    gradcheck((a) => mul(a.slice(1, 3), a.slice(0, 2)), [{ shape: [4, 3] }]);
    gradcheck((a) => mul(a.reshape([3, 2]), a.reshape([-1, 2])), [{ shape: [2, 3] }]);
  });

  it('concat places the values', () => {
    const out = tidy(() =>
      concat([Tensor.from([1, 2, 3, 4], [2, 2]), Tensor.from([5, 6], [2, 1])], 1).toFloat32Array(),
    );
    expect(Array.from(out)).toEqual([1, 2, 5, 3, 4, 6]);
    expect(() => tidy(() => concat([Tensor.zeros([2, 2]), Tensor.zeros([3, 1])], 1))).toThrow(
      /concat: tensors\[1\] \[3, 1\] does not match tensors\[0\] \[2, 2\] outside axis 1/,
    );
  });

  it('writeSlice writes in place along an axis and refuses what it cannot do', () => {
    tidy(() => {
      const dst = Tensor.zeros([2, 4, 1]);
      writeSlice(Tensor.from([1, 2, 3, 4], [2, 2, 1]), dst, 1, 1);
      expect(Array.from(dst.toFloat32Array())).toEqual([0, 1, 2, 0, 0, 3, 4, 0]);
      expect(() => writeSlice(Tensor.zeros([2, 2, 1]), dst, 1, 3)).toThrow(
        /writeSlice: \[3, 5\) is outside axis 1 of \[2, 4, 1\]/,
      );
      expect(() => writeSlice(Tensor.zeros([3, 1, 1]), dst, 1, 0)).toThrow(
        /does not match dst \[2, 4, 1\] outside axis 1/,
      );
      const param = Tensor.zeros([2, 1, 1], { requiresGrad: true });
      expect(() => writeSlice(param, dst, 1, 0)).toThrow(/cannot be differentiated/);
    });
  });
});
