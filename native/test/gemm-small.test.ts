// The few-rows path of sgemm (native/src/cpu/gemm_small.cc): M <= 16 rows of A against B stored
// [N, K] (transB, as x @ W^T in a decode step) are dot products over unpacked rows. Every M, the
// N and K tails of its 4 x 4 tiles and 16-float vectors, alpha / beta, and bit-identical results
// on any number of threads; transA or M > 16 keep the packed path (covered by gemm.test.ts).
import { expectClose, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { buildInfo, setNumThreads, sgemm } from '../index.js';

/** alpha * A @ B^T + beta * C in float64 and the bound scale max_ij sum_p |a_ip||b_jp|. */
function reference(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  m: number,
  n: number,
  k: number,
  alpha: number,
  beta: number,
) {
  const out = new Float64Array(m * n);
  let scale = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let abs = 0;
      for (let p = 0; p < k; p++) {
        const prod = a[i * k + p] * b[j * k + p];
        s += prod;
        abs += Math.abs(prod);
      }
      out[i * n + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * n + j]);
      scale = Math.max(scale, Math.abs(alpha) * abs);
    }
  return { out, scale };
}

function check(m: number, n: number, k: number, alpha: number, beta: number, seed: number): void {
  const rand = seededRandom(seed);
  const a = randomNormal(m * k, rand);
  const b = randomNormal(n * k, rand);
  const c = beta === 0 ? new Float32Array(m * n).fill(Number.NaN) : randomNormal(m * n, rand);
  const { out, scale } = reference(a, b, c, m, n, k, alpha, beta);
  let cmax = 0;
  for (const x of c) cmax = Math.max(cmax, Math.abs(x));
  const got = sgemm({ a, b, c, m, n, k, transB: true, alpha, beta });
  expect(got).toBe(c);
  // The bound of gemm.test.ts: k roundings of the dot product, a few more for alpha, beta * C.
  const atol = 1e-7 * (k + 4) * scale + (beta === 0 ? 0 : 1e-7 * Math.abs(beta) * cmax);
  expectClose(got, out, { atol }, `sgemm NT ${m}x${n}x${k} alpha=${alpha} beta=${beta}`);
}

describe('sgemm, few rows (M <= 16, transB)', () => {
  it('every M from 1 to 17, N and K around the tile and vector edges', () => {
    for (let m = 1; m <= 17; m++)
      for (const n of [1, 2, 3, 4, 5, 7, 33])
        for (const k of [1, 15, 16, 17, 40, 257]) check(m, n, k, 1, 0, m * 10_000 + n * 100 + k);
  });

  it('alpha and beta (beta = 0 ignores C, NaN included)', () => {
    for (const [alpha, beta] of [
      [-0.75, 0.5],
      [2, 1],
      [0.5, 0],
    ])
      for (const m of [1, 6, 16]) check(m, 37, 300, alpha, beta, m + 7);
  });

  it('parallel sizes: the LM head of a decode step and a wide MLP', () => {
    check(8, 3001, 256, 1, 0, 1);
    check(3, 1030, 1024, 1, 1, 2);
  });

  it('gives the same bits on any number of threads, and agrees with the packed path', () => {
    const rand = seededRandom(5);
    const [m, n, k] = [17, 2053, 300];
    const a = randomNormal(m * k, rand);
    const b = randomNormal(n * k, rand);
    const threads = buildInfo().threads;
    try {
      setNumThreads(1);
      const one = sgemm({ a: a.subarray(0, 16 * k), b, m: 16, n, k, transB: true });
      setNumThreads(3);
      const three = sgemm({ a: a.subarray(0, 16 * k), b, m: 16, n, k, transB: true });
      expectClose(three, one, { atol: 0 }, 'few-rows sgemm on 3 threads vs 1');
      // 17 rows take the packed path: its first 16 rows are the same products, summed in another order.
      const packed = sgemm({ a, b, m, n, k, transB: true }).subarray(0, 16 * n);
      expectClose(one, packed, { atol: 1e-7 * (k + 4) * 4 * k }, 'few-rows vs packed sgemm');
    } finally {
      setNumThreads(threads);
    }
  });
});
