import { expectClose, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { buildInfo, setNumThreads, sgemm } from '../index.js';

// The blocking of native/src/cpu/gemm.cc: micro-tile rows (MR) and columns (NR) depend on the SIMD
// width the addon was built for; KC = 384, NC = 384, MC = the largest multiple of MR <= 1024.
const MR = { avx512: 14, avx2: 6, generic: 4 }[buildInfo().simd];
const NR = { avx512: 32, avx2: 16, generic: 4 }[buildInfo().simd];
const KC = 384;
const NC = 384;
const MC = MR * Math.floor(1024 / MR);

interface Case {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

/** alpha * op(a) @ op(b) + beta * c in float64, with the bound scale max_ij sum_p |a_ip||b_pj|. */
function reference(a: Float32Array, b: Float32Array, c: Float32Array, o: Case) {
  const { m, n, k, transA = false, transB = false, alpha = 1, beta = 0 } = o;
  const out = new Float64Array(m * n);
  let scale = 0;
  const row = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) row[p] = transA ? a[p * m + i] : a[i * k + p];
    for (let j = 0; j < n; j++) {
      let s = 0;
      let abs = 0;
      for (let p = 0; p < k; p++) {
        const prod = row[p] * (transB ? b[j * k + p] : b[p * n + j]);
        s += prod;
        abs += Math.abs(prod);
      }
      out[i * n + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * n + j]);
      scale = Math.max(scale, Math.abs(alpha) * abs);
    }
  }
  return { out, scale };
}

// Tolerance: a float32 dot product of length k has |err| <= k * u * sum_p |a_ip||b_pj| (u = 2^-24 ~ 6e-8,
// one rounding per FMA / partial-sum add), and alpha, beta * C and the final add round a few times more.
// So atol = 1e-7 * (k + 4) * max_ij sum_p |a_ip||b_pj| (+ 1e-7 * |beta| * max|C|): the worst-case
// bound with under 2x slack, which no indexing or edge-tile bug (an O(1) relative error) can pass.
function check(o: Case, seed: number) {
  const rand = seededRandom(seed);
  const { m, n, k, beta = 0 } = o;
  const a = randomNormal(m * k, rand);
  const b = randomNormal(k * n, rand);
  // beta == 0 must ignore C entirely, NaN included.
  const c = beta === 0 ? new Float32Array(m * n).fill(Number.NaN) : randomNormal(m * n, rand);
  const { out, scale } = reference(a, b, c, o);
  let cmax = 0;
  for (const x of c) cmax = Math.max(cmax, Math.abs(x));
  const got = sgemm({ ...o, a, b, c });
  expect(got).toBe(c); // written in place
  const atol = 1e-7 * (k + 4) * scale + (beta === 0 ? 0 : 1e-7 * Math.abs(beta) * cmax);
  const trans = `${o.transA ? 'T' : 'N'}${o.transB ? 'T' : 'N'}`;
  expectClose(got, out, { atol }, `sgemm ${trans} ${m}x${n}x${k} alpha=${o.alpha ?? 1} beta=${beta}`);
}

const TRANS = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;

describe('sgemm', () => {
  describe.each(TRANS)('transA=%s transB=%s', (transA, transB) => {
    it.each([
      [1, 1, 1],
      [7, 13, 5],
      [17, 33, 65],
      [MR - 1, NR - 1, 3],
      [MR, NR, 8],
      [MR + 1, NR + 1, 9],
      [2 * MR + 3, 3 * NR + 5, 31],
    ])('small and edge tiles %ix%ix%i', (m, n, k) => {
      check({ m, n, k, transA, transB }, m * 1000 + n * 10 + k);
    });

    it.each([
      [5, 40, KC - 1],
      [5, 40, KC],
      [5, 40, KC + 1],
      [3, 20, 2 * KC + 7],
    ])('depth around KC: %ix%ix%i', (m, n, k) => {
      // beta = 1 here: every KC block after the first must accumulate onto C.
      check({ m, n, k, transA, transB, beta: 1 }, k);
    });

    it.each([
      [MC - 1, 3, 12],
      [MC, 5, 12],
      [MC + 1, 7, 12],
      [9, NC - 1, 20],
      [9, NC, 20],
      [9, NC + 1, 20],
      [MC + MR + 2, NC + NR + 3, KC + 5],
      [2 * MC + 3 * MR, 40, 20],
    ])('rows around MC, columns around NC: %ix%ix%i', (m, n, k) => {
      check({ m, n, k, transA, transB, alpha: -0.75, beta: 0.5 }, m + n + k);
    });

    it('parallel shapes: tall-skinny both ways and square', () => {
      check({ m: 3, n: 2500, k: 70, transA, transB, alpha: 2 }, 1);
      check({ m: 2500, n: 3, k: 70, transA, transB, beta: 1 }, 2);
      check({ m: 200, n: 150, k: 130, transA, transB, alpha: 0.5, beta: 0.5 }, 3);
    });
  });

  it('gives the same bits on any number of threads', () => {
    // Each thread owns a rectangle of C and sums in the same order, so the split must not matter.
    const rand = seededRandom(11);
    const [m, n, k] = [301, 517, 450];
    const a = randomNormal(m * k, rand);
    const b = randomNormal(k * n, rand);
    const threads = buildInfo().threads;
    try {
      setNumThreads(1);
      const one = sgemm({ a, b, m, n, k, transB: true });
      setNumThreads(3);
      // atol 0: bit-identical (expectClose reports one element, not a 155k-element diff).
      expectClose(sgemm({ a, b, m, n, k, transB: true }), one, { atol: 0 }, 'sgemm on 3 threads vs 1');
    } finally {
      setNumThreads(threads);
    }
  });

  it('alpha = 0 leaves beta * C and does not read A or B', () => {
    const c = Float32Array.from([1, -2, 3, 4]);
    const a = new Float32Array(6).fill(Number.NaN);
    const b = new Float32Array(6).fill(Number.NaN);
    expect(Array.from(sgemm({ a, b, c, m: 2, n: 2, k: 3, alpha: 0, beta: 0.5 }))).toEqual([0.5, -1, 1.5, 2]);
  });

  it('allocates C when it is not given', () => {
    const out = sgemm({ a: Float32Array.from([1, 2]), b: Float32Array.from([3, 4]), m: 1, n: 1, k: 2 });
    expect(Array.from(out)).toEqual([11]);
  });

  it('names the argument whose length is wrong', () => {
    const a = new Float32Array(6);
    const b = new Float32Array(12);
    const c = new Float32Array(8);
    expect(() => sgemm({ a: new Float32Array(5), b, m: 2, n: 4, k: 3 })).toThrow(RangeError);
    expect(() => sgemm({ a: new Float32Array(5), b, m: 2, n: 4, k: 3 })).toThrow(
      /sgemm: a has 5 elements; expected 6/,
    );
    expect(() => sgemm({ a, b: new Float32Array(11), m: 2, n: 4, k: 3, transB: true })).toThrow(
      /sgemm: b has 11 elements; expected 12 \(\[n, k\]/,
    );
    expect(() => sgemm({ a, b, c: new Float32Array(7), m: 2, n: 4, k: 3 })).toThrow(
      /sgemm: c has 7 elements; expected 8/,
    );
    expect(() => sgemm({ a, b, m: 2, n: 4, k: 3, beta: 1 })).toThrow(/c is required when beta != 0/);
    expect(() => sgemm({ a, b, c, m: 0, n: 4, k: 3 })).toThrow(/m must be a positive integer/);
  });
});
