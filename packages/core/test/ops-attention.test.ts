import { cuda } from '@othink/native';
import {
  expectClose,
  Fixture,
  fixtureCases,
  maxAbs,
  randomNormal,
  seededRandom,
  tinyConfig,
} from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  attention,
  type Device,
  mropeCosSin,
  noGrad,
  ropeInvFreq,
  rotary,
  Tensor,
  tidy,
  visionRotaryCosSin,
} from '../src/index.js';
import { gradcheck } from './gradcheck.js';

interface Sizes {
  B: number;
  Sq: number;
  Sk: number;
  Hq: number;
  Hkv: number;
  D: number;
}

interface MaskSpec {
  causal: boolean;
  keyMask?: Int32Array;
  cu?: number[];
  scale?: number;
}

/** Whether query i (of Sq) of batch b may see key j, from the definitions in spec §2.5 / §3.3. */
function visible(s: Sizes, m: MaskSpec, b: number, i: number, j: number): boolean {
  if (m.causal && j > i + s.Sk - s.Sq) return false;
  if (m.keyMask && m.keyMask[b * s.Sk + j] === 0) return false;
  if (m.cu) {
    // Same segment: no boundary c with min(i, j) < c <= max(i, j).
    const [lo, hi] = i < j ? [i, j] : [j, i];
    if (m.cu.some((c) => lo < c && c <= hi)) return false;
  }
  return true;
}

/**
 * Naive attention in float64 with the full probability matrix, and its gradients for an upstream
 * gradient g: dV = P^T g, dP = g V^T, dS = P (dP - rowsum(P dP)), dQ = scale dS K, dK = scale dS^T Q.
 * Rows with no visible key output 0 (the op's documented choice).
 */
function reference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  s: Sizes,
  m: MaskSpec,
  g?: Float32Array,
) {
  const { B, Sq, Sk, Hq, Hkv, D } = s;
  const scale = m.scale ?? 1 / Math.sqrt(D);
  const group = Hq / Hkv;
  const out = new Float64Array(B * Sq * Hq * D);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const empty: boolean[] = [];
  const qi = (b: number, i: number, h: number) => ((b * Sq + i) * Hq + h) * D;
  const ki = (b: number, j: number, h: number) => ((b * Sk + j) * Hkv + h) * D;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < Sq; i++) {
        const qa = qi(b, i, h);
        const p = new Float64Array(Sk);
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < Sk; j++) {
          if (!visible(s, m, b, i, j)) {
            p[j] = Number.NEGATIVE_INFINITY;
            continue;
          }
          const ka = ki(b, j, hk);
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qa + d] * k[ka + d];
          p[j] = dot * scale;
          max = Math.max(max, p[j]);
        }
        empty[(b * Sq + i) * Hq + h] = max === Number.NEGATIVE_INFINITY;
        if (max === Number.NEGATIVE_INFINITY) continue;
        let sum = 0;
        for (let j = 0; j < Sk; j++) {
          p[j] = Math.exp(p[j] - max);
          sum += p[j];
        }
        for (let j = 0; j < Sk; j++) {
          p[j] /= sum;
          if (p[j] === 0) continue;
          const ka = ki(b, j, hk);
          for (let d = 0; d < D; d++) out[qa + d] += p[j] * v[ka + d];
        }
        if (!g) continue;
        const dp = new Float64Array(Sk);
        let rowDot = 0;
        for (let j = 0; j < Sk; j++) {
          if (p[j] === 0) continue;
          const ka = ki(b, j, hk);
          for (let d = 0; d < D; d++) dp[j] += g[qa + d] * v[ka + d];
          rowDot += p[j] * dp[j];
        }
        for (let j = 0; j < Sk; j++) {
          if (p[j] === 0) continue;
          const ka = ki(b, j, hk);
          const ds = p[j] * (dp[j] - rowDot) * scale;
          for (let d = 0; d < D; d++) {
            dv[ka + d] += p[j] * g[qa + d];
            dq[qa + d] += ds * k[ka + d];
            dk[ka + d] += ds * q[qa + d];
          }
        }
      }
    }
  }
  return { out, dq, dk, dv, empty };
}

const shapeOf = (s: Sizes) => ({ q: [s.B, s.Sq, s.Hq, s.D], kv: [s.B, s.Sk, s.Hkv, s.D] });

/** Runs the op on given values; returns the output and, with g, the three gradients. */
function run(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  s: Sizes,
  m: MaskSpec,
  g?: Float32Array,
  device: Device = 'cpu',
) {
  return tidy(() => {
    const { q: qs, kv } = shapeOf(s);
    const [tq, tk, tv] = [
      Tensor.from(q, qs, { requiresGrad: true, device }),
      Tensor.from(k, kv, { requiresGrad: true, device }),
      Tensor.from(v, kv, { requiresGrad: true, device }),
    ];
    const keyMask = m.keyMask ? Tensor.from(m.keyMask, [s.B, s.Sk], { dtype: 'int32', device }) : undefined;
    const out = attention(tq, tk, tv, { causal: m.causal, keyMask, cuSeqlens: m.cu, scale: m.scale });
    const values = out.toFloat32Array();
    if (!g) return { out: values };
    out.backward(Tensor.from(g, out.shape, { device }));
    return {
      out: values,
      dq: tq.grad!.toFloat32Array(),
      dk: tk.grad!.toFloat32Array(),
      dv: tv.grad!.toFloat32Array(),
    };
  });
}

/** Random q, k, v (and an upstream gradient) for the sizes. */
function inputs(s: Sizes, seed: number) {
  const rand = seededRandom(seed);
  return {
    q: randomNormal(s.B * s.Sq * s.Hq * s.D, rand),
    k: randomNormal(s.B * s.Sk * s.Hkv * s.D, rand),
    v: randomNormal(s.B * s.Sk * s.Hkv * s.D, rand),
    g: randomNormal(s.B * s.Sq * s.Hq * s.D, rand),
  };
}

/** Left padding: row b has pads[b] padding keys at the start. */
function leftPadMask(B: number, S: number, pads: number[]): Int32Array {
  return Int32Array.from({ length: B * S }, (_, n) => (n % S >= pads[Math.floor(n / S)] ? 1 : 0));
}

// Tolerances against the float64 reference. Outputs are convex combinations of v (|v| <~ 4); the
// kernel rounds q . k (D <= 128 float32 terms), the exp (2.5e-7 relative) and the running sums,
// so a probability is off by a few 1e-7 relative and an output by < 1e-6 (measured: at most
// 7.5e-7 over these cases): 5e-6 is a ~7x margin. Gradients chain two more float32 products of the
// same kind (dP = g V^T, then dS K or dS^T Q); measured at most 1.1e-6 of the largest gradient
// component: 1e-5 of it.
const OUT_ATOL = 5e-6;
const GRAD_RTOL_OF_MAX = 1e-5;

function checkAgainstReference(s: Sizes, m: MaskSpec, seed: number, name: string, device: Device = 'cpu') {
  const { q, k, v, g } = inputs(s, seed);
  const got = run(q, k, v, s, m, g, device);
  const ref = reference(q, k, v, s, m, g);
  expectClose(got.out, ref.out, { atol: OUT_ATOL }, `${name}: out`);
  for (const key of ['dq', 'dk', 'dv'] as const) {
    expectClose(got[key]!, ref[key], { atol: GRAD_RTOL_OF_MAX * maxAbs(ref[key]) + 1e-7 }, `${name}: ${key}`);
  }
  return { got, ref };
}

describe('attention: forward and backward against a float64 reference', () => {
  it('causal with GQA (Hq 4, Hkv 2) and odd sizes', () => {
    checkAgainstReference({ B: 2, Sq: 5, Sk: 5, Hq: 4, Hkv: 2, D: 6 }, { causal: true }, 1, 'causal');
  });

  it('causal with a left-padded row: padded queries see nothing and output 0', () => {
    const s = { B: 2, Sq: 5, Sk: 5, Hq: 4, Hkv: 2, D: 6 };
    const keyMask = leftPadMask(2, 5, [0, 2]);
    const { got, ref } = checkAgainstReference(s, { causal: true, keyMask }, 2, 'padded');
    // Batch 1, queries 0 and 1 (the pads) have no visible key: finite, exactly 0.
    expect(ref.empty.filter(Boolean).length).toBe(2 * s.Hq);
    for (let i = 0; i < got.out.length; i++) {
      expect(Number.isFinite(got.out[i])).toBe(true);
      if (ref.empty[Math.floor(i / s.D)]) expect(got.out[i]).toBe(0);
    }
    for (const key of ['dq', 'dk', 'dv'] as const) expect(got[key]!.every(Number.isFinite)).toBe(true);
  });

  it('a whole batch row of padding keys: every output of that row is 0 and finite', () => {
    const s = { B: 2, Sq: 3, Sk: 3, Hq: 2, Hkv: 1, D: 4 };
    const keyMask = Int32Array.from([1, 1, 1, 0, 0, 0]);
    for (const causal of [true, false]) {
      const { got } = checkAgainstReference(s, { causal, keyMask }, 3, `all padding, causal ${causal}`);
      expect(Array.from(got.out.slice(s.Sq * s.Hq * s.D))).toEqual(new Array(s.Sq * s.Hq * s.D).fill(0));
      expect(Array.from(got.dq!.slice(s.Sq * s.Hq * s.D)).every((x) => x === 0)).toBe(true);
    }
  });

  it('KV-cache queries (Sq < Sk) are the last rows of the full computation', () => {
    // Up to 8 queries the kernel reads K / V in place (the decode path), beyond it packs them in
    // blocks (the prefill path): the prefill of 40 positions and a 2-query decode of the same keys
    // take different paths and must agree on the last two rows.
    const S = 40;
    const full = { B: 2, Sq: S, Sk: S, Hq: 4, Hkv: 2, D: 6 };
    const keyMask = leftPadMask(2, S, [0, 3]);
    checkAgainstReference({ ...full, Sq: 2 }, { causal: true, keyMask }, 4, 'Sq < Sk');
    checkAgainstReference({ ...full, Sq: 1 }, { causal: true, keyMask }, 5, 'one decode step');
    const { q, k, v } = inputs(full, 6);
    const fullOut = run(q, k, v, full, { causal: true, keyMask }).out;
    const rowLen = full.Hq * full.D;
    const last = new Float32Array(2 * 2 * rowLen);
    for (let b = 0; b < 2; b++)
      last.set(q.subarray((b * S + S - 2) * rowLen, (b * S + S) * rowLen), b * 2 * rowLen);
    const decode = run(last, k, v, { ...full, Sq: 2 }, { causal: true, keyMask }).out;
    for (let b = 0; b < 2; b++) {
      expectClose(
        decode.subarray(b * 2 * rowLen, (b + 1) * 2 * rowLen),
        fullOut.subarray((b * S + S - 2) * rowLen, (b * S + S) * rowLen),
        { atol: 1e-6 },
        `decode rows of batch ${b}`,
      );
    }
  });

  it('segmented non-causal (vision): tokens attend only within their segment', () => {
    const s = { B: 1, Sq: 7, Sk: 7, Hq: 3, Hkv: 3, D: 6 };
    checkAgainstReference(s, { causal: false, cu: [0, 3, 7] }, 7, 'segments');
    checkAgainstReference(s, { causal: false, cu: [0, 1, 2, 7] }, 8, 'single-token segments');
    checkAgainstReference(s, { causal: false }, 9, 'non-causal, one segment');
    // Rank-3 [N, H, D] inputs (the vision layout) give the same numbers as [1, N, H, D].
    const { q, k, v } = inputs(s, 7);
    const rank4 = run(q, k, v, s, { causal: false, cu: [0, 3, 7] }).out;
    const rank3 = tidy(() =>
      attention(Tensor.from(q, [7, 3, 6]), Tensor.from(k, [7, 3, 6]), Tensor.from(v, [7, 3, 6]), {
        causal: false,
        cuSeqlens: Tensor.from(Int32Array.from([0, 3, 7]), [3], { dtype: 'int32' }),
      }).toFloat32Array(),
    );
    expect(Array.from(rank3)).toEqual(Array.from(rank4));
  });

  it('sizes past one block: several query / key blocks, partial panels, D of 80 and 128', () => {
    // 64-query and 64-key blocks, 32-wide panels: 150 positions cross both, with ragged ends
    // (the small cases above, Sq <= 8, take the in-place decode path; these the blocked one).
    const keyMask = leftPadMask(2, 150, [0, 37]);
    checkAgainstReference(
      { B: 2, Sq: 150, Sk: 150, Hq: 2, Hkv: 1, D: 80 },
      { causal: true, keyMask },
      10,
      'S 150 D 80',
    );
    checkAgainstReference(
      { B: 1, Sq: 70, Sk: 130, Hq: 2, Hkv: 2, D: 128 },
      { causal: true },
      11,
      'Sq 70 Sk 130',
    );
    checkAgainstReference(
      { B: 1, Sq: 140, Sk: 140, Hq: 2, Hkv: 2, D: 33 },
      { causal: false, cu: [0, 50, 51, 140] },
      12,
      'segments across blocks',
    );
    // The decode path against a long, left-padded cache (fully masked rows included).
    checkAgainstReference(
      { B: 2, Sq: 3, Sk: 300, Hq: 4, Hkv: 2, D: 128 },
      { causal: true, keyMask: leftPadMask(2, 300, [0, 298]) },
      15,
      'decode, long cache',
    );
    // Blocked path with fully masked query rows in a whole block: 70 left pads.
    const { got, ref } = checkAgainstReference(
      { B: 1, Sq: 100, Sk: 100, Hq: 2, Hkv: 1, D: 16 },
      { causal: true, keyMask: leftPadMask(1, 100, [70]) },
      16,
      'blocked, masked rows',
    );
    expect(ref.empty.filter(Boolean).length).toBe(70 * 2);
    ref.empty.forEach((e, r) => {
      if (e) expect(Array.from(got.out.subarray(r * 16, (r + 1) * 16)).every((x) => x === 0)).toBe(true);
    });
  });

  it('a custom scale', () => {
    checkAgainstReference(
      { B: 1, Sq: 4, Sk: 6, Hq: 2, Hkv: 1, D: 5 },
      { causal: true, scale: 0.7 },
      13,
      'scale',
    );
  });
});

describe('attention: finite-difference gradients', () => {
  it('q, k, v: causal + GQA + left padding', () => {
    const keyMask = leftPadMask(2, 5, [0, 2]);
    gradcheck(
      (q, k, v, mask) => attention(q, k, v, { causal: true, keyMask: mask }),
      [
        { shape: [2, 5, 4, 6] },
        { shape: [2, 5, 2, 6] },
        { shape: [2, 5, 2, 6] },
        {
          shape: [2, 5],
          dtype: 'int32',
          constant: true,
          data: Float32Array.from(keyMask),
        },
      ],
    );
  });

  it('q, k, v: the blocked forward path (more than 8 queries), causal + GQA + padding', () => {
    gradcheck(
      (q, k, v, mask) => attention(q, k, v, { causal: true, keyMask: mask }),
      [
        { shape: [1, 11, 2, 4] },
        { shape: [1, 11, 1, 4] },
        { shape: [1, 11, 1, 4] },
        { shape: [1, 11], dtype: 'int32', constant: true, data: Float32Array.from(leftPadMask(1, 11, [3])) },
      ],
      { seed: 4 },
    );
  });

  it('q, k, v: Sq < Sk (KV cache)', () => {
    gradcheck(
      (q, k, v) => attention(q, k, v, { causal: true }),
      [{ shape: [2, 2, 4, 3] }, { shape: [2, 5, 2, 3] }, { shape: [2, 5, 2, 3] }],
      { seed: 2 },
    );
  });

  it('q, k, v: segmented, segments [0, 3, 7]', () => {
    gradcheck(
      (q, k, v) => attention(q, k, v, { causal: false, cuSeqlens: [0, 3, 7] }),
      [{ shape: [7, 2, 6] }, { shape: [7, 2, 6] }, { shape: [7, 2, 6] }],
      { seed: 3 },
    );
  });

  it('only some inputs require grad', () => {
    const { q, k, v } = inputs({ B: 1, Sq: 3, Sk: 3, Hq: 2, Hkv: 1, D: 4 }, 14);
    tidy(() => {
      const tq = Tensor.from(q, [1, 3, 2, 4]);
      const tk = Tensor.from(k, [1, 3, 1, 4]);
      const tv = Tensor.from(v, [1, 3, 1, 4], { requiresGrad: true });
      attention(tq, tk, tv, { causal: true }).backward(
        Tensor.from(randomNormal(24, seededRandom(1)), [1, 3, 2, 4]),
      );
      expect(tv.grad?.shape).toEqual([1, 3, 1, 4]);
      expect(tq.grad).toBeNull();
    });
  });
});

describe('attention: bad input', () => {
  const z = (shape: number[]) => Tensor.zeros(shape);
  const call = (q: number[], k: number[], v: number[], options: Parameters<typeof attention>[3]) => () =>
    tidy(() => attention(z(q), z(k), z(v), options));

  it('shape mismatches name every shape', () => {
    expect(call([2, 5, 4, 6], [2, 5, 2, 8], [2, 5, 2, 8], { causal: true })).toThrow(
      /q and k must share the batch and the head dimension \(got q \[2, 5, 4, 6\], k \[2, 5, 2, 8\], v \[2, 5, 2, 8\]\)/,
    );
    expect(call([2, 5, 4, 6], [2, 5, 2, 6], [2, 4, 2, 6], { causal: true })).toThrow(
      /k \[2, 5, 2, 6\] and v \[2, 4, 2, 6\] must have the same shape/,
    );
    expect(call([5, 4, 6], [2, 5, 2, 6], [2, 5, 2, 6], { causal: true })).toThrow(
      /must all be \[B, S, heads, D\] or all \[N, heads, D\] \(got q \[5, 4, 6\], k \[2, 5, 2, 6\]/,
    );
    expect(call([2, 5, 4, 6], [3, 5, 2, 6], [3, 5, 2, 6], { causal: true })).toThrow(/share the batch/);
  });

  it('query heads not a multiple of kv heads', () => {
    expect(call([1, 3, 4, 6], [1, 3, 3, 6], [1, 3, 3, 6], { causal: true })).toThrow(
      /the 4 query heads must be a multiple of the 3 kv heads .*q \[1, 3, 4, 6\], k \[1, 3, 3, 6\]/,
    );
  });

  it('causal with more queries than keys, or without saying causal', () => {
    expect(call([1, 4, 2, 6], [1, 3, 2, 6], [1, 3, 2, 6], { causal: true })).toThrow(
      /no more queries than keys/,
    );
    expect(call([1, 3, 2, 6], [1, 3, 2, 6], [1, 3, 2, 6], {} as never)).toThrow(
      /options.causal must be true or false/,
    );
  });

  it('cuSeqlens not increasing, not ending at N, not starting at 0, or with a batch', () => {
    const shape = [7, 2, 6];
    expect(call(shape, shape, shape, { causal: false, cuSeqlens: [0, 3, 3, 7] })).toThrow(
      /cuSeqlens \[0, 3, 3, 7\] must increase strictly/,
    );
    expect(call(shape, shape, shape, { causal: false, cuSeqlens: [0, 4, 2, 7] })).toThrow(
      /must increase strictly/,
    );
    expect(call(shape, shape, shape, { causal: false, cuSeqlens: [0, 3, 6] })).toThrow(
      /cuSeqlens \[0, 3, 6\] must end at the sequence length 7/,
    );
    expect(call(shape, shape, shape, { causal: false, cuSeqlens: [1, 3, 7] })).toThrow(/must start at 0/);
    expect(call([2, 7, 2, 6], [2, 7, 2, 6], [2, 7, 2, 6], { causal: false, cuSeqlens: [0, 7] })).toThrow(
      /cuSeqlens needs one sequence/,
    );
  });

  it('key masks of the wrong shape, dtype or values', () => {
    const shape = [2, 3, 2, 4];
    const mask = (values: number[], shp: number[]) =>
      Tensor.from(Int32Array.from(values), shp, { dtype: 'int32' });
    expect(() =>
      tidy(() => attention(z(shape), z(shape), z(shape), { causal: true, keyMask: mask([1, 1, 1], [1, 3]) })),
    ).toThrow(/keyMask \[1, 3\] must be \[B, Sk\] = \[2, 3\]/);
    expect(() =>
      tidy(() => attention(z(shape), z(shape), z(shape), { causal: true, keyMask: Tensor.zeros([2, 3]) })),
    ).toThrow(/keyMask has dtype float32, expected int32/);
    expect(() =>
      tidy(() =>
        attention(z(shape), z(shape), z(shape), { causal: true, keyMask: mask([1, 1, 1, 0, 2, 1], [2, 3]) }),
      ),
    ).toThrow(/keyMask\[1, 1\] is 2; expected 0 \(padding\) or 1 \(attend\)/);
  });
});

// The CUDA twin against the same float64 reference and tolerances (its exp is expf, <= 2 ulp, and
// its sums run in other orders: the CPU budget covers it). Runs only on a CUDA build with a GPU.
const gpu = cuda?.deviceInfo().available === true;
describe.skipIf(!gpu)('attention on CUDA: forward and backward against the float64 reference', () => {
  it('causal + GQA + padding, Sq < Sk, segments, sizes past one block', () => {
    const keyMask = leftPadMask(2, 7, [0, 3]);
    checkAgainstReference(
      { B: 2, Sq: 7, Sk: 7, Hq: 4, Hkv: 2, D: 6 },
      { causal: true, keyMask },
      21,
      'cuda padded',
      'cuda',
    );
    checkAgainstReference(
      { B: 2, Sq: 2, Sk: 7, Hq: 4, Hkv: 2, D: 6 },
      { causal: true, keyMask },
      22,
      'cuda Sq < Sk',
      'cuda',
    );
    checkAgainstReference(
      { B: 1, Sq: 7, Sk: 7, Hq: 3, Hkv: 3, D: 6 },
      { causal: false, cu: [0, 3, 7] },
      23,
      'cuda segments',
      'cuda',
    );
    checkAgainstReference(
      { B: 2, Sq: 150, Sk: 150, Hq: 2, Hkv: 1, D: 80 },
      { causal: true, keyMask: leftPadMask(2, 150, [0, 37]) },
      24,
      'cuda S 150 D 80',
      'cuda',
    );
    checkAgainstReference(
      { B: 1, Sq: 70, Sk: 130, Hq: 2, Hkv: 2, D: 128 },
      { causal: true },
      25,
      'cuda D 128',
      'cuda',
    );
  });
});

// ---- End to end on the tiny Qwen2-VL fixture: one LLM decoder layer and one vision block, with
// the rotary tables, rotary and attention from the ops and everything else (norms, linears, MLPs)
// in float64 here from the spec's formulas (§2.5, §3.2-3.4).

function linear64(
  x: Float64Array,
  rows: number,
  w: Float64Array,
  b: Float64Array | null,
  out: number,
  inp: number,
) {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * w[o * inp + i];
      y[r * out + o] = s;
    }
  return y;
}

function rmsNorm64(x: Float64Array, rows: number, n: number, w: Float64Array) {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let ms = 0;
    for (let i = 0; i < n; i++) ms += x[r * n + i] ** 2;
    const inv = 1 / Math.sqrt(ms / n + 1e-6);
    for (let i = 0; i < n; i++) y[r * n + i] = x[r * n + i] * inv * w[i];
  }
  return y;
}

function layerNorm64(x: Float64Array, rows: number, n: number, w: Float64Array, b: Float64Array) {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i] / n;
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (x[r * n + i] - mean) ** 2 / n;
    const inv = 1 / Math.sqrt(variance + 1e-6);
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

/** Rotary + attention through the ops on float64 q / k / v rows; returns the attention output. */
function opsAttention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  qShape: number[],
  kvShape: number[],
  tables: () => { cos: Tensor; sin: Tensor },
  options: Parameters<typeof attention>[3],
): Float64Array {
  return tidy(() =>
    noGrad(() => {
      const { cos, sin } = tables();
      const rq = rotary(Tensor.from(Float32Array.from(q), qShape), cos, sin);
      const rk = rotary(Tensor.from(Float32Array.from(k), kvShape), cos, sin);
      return Float64Array.from(
        attention(rq, rk, Tensor.from(Float32Array.from(v), kvShape), options).toFloat32Array(),
      );
    }),
  );
}

describe('rotary tables + rotary + attention reproduce the tiny Qwen2-VL fixture', () => {
  const model = new Fixture('qwen2vl-tiny/model.safetensors');
  // The forward case of the set with the most images (the public set's case-batch: two images,
  // left padded), so that both the padding mask and the vision segments are exercised.
  const batchName = fixtureCases('qwen2vl-tiny', { with: ['vision.cu_seqlens', 'hidden.layer.0'] })
    .map((name) => ({ name, f: new Fixture(`qwen2vl-tiny/${name}.safetensors`) }))
    .sort((a, b) => b.f.shape('image_grid_thw')[0] - a.f.shape('image_grid_thw')[0])[0];
  const batch = batchName.f;
  const config = tinyConfig();
  const w = (name: string) => model.f64(name);

  it(`LLM decoder layer 0 of ${batchName.name} (M-RoPE, GQA, causal, left padding)`, () => {
    const [B, S, hidden] = batch.shape('inputs_embeds');
    const Hq = config.num_attention_heads;
    const Hkv = config.num_key_value_heads;
    const D = hidden / Hq;
    const inter = config.intermediate_size;
    const rows = B * S;
    const p = 'model.layers.0.';
    const h = batch.f64('inputs_embeds');
    const x = rmsNorm64(h, rows, hidden, w(`${p}input_layernorm.weight`));
    const q = linear64(
      x,
      rows,
      w(`${p}self_attn.q_proj.weight`),
      w(`${p}self_attn.q_proj.bias`),
      Hq * D,
      hidden,
    );
    const k = linear64(
      x,
      rows,
      w(`${p}self_attn.k_proj.weight`),
      w(`${p}self_attn.k_proj.bias`),
      Hkv * D,
      hidden,
    );
    const v = linear64(
      x,
      rows,
      w(`${p}self_attn.v_proj.weight`),
      w(`${p}self_attn.v_proj.bias`),
      Hkv * D,
      hidden,
    );
    const mask = batch.i32('attention_mask');
    const attn = opsAttention(
      q,
      k,
      v,
      [B, S, Hq, D],
      [B, S, Hkv, D],
      // config.json: rope_theta and mrope_section (public set: 1e6, [2, 3, 3] for head_dim 16).
      () =>
        mropeCosSin(
          Tensor.from(batch.i32('position_ids'), [3, B, S], { dtype: 'int32' }),
          ropeInvFreq(D, config.rope_theta),
          config.rope_scaling.mrope_section,
        ),
      { causal: true, keyMask: Tensor.from(mask, [B, S], { dtype: 'int32' }) },
    );
    const o = linear64(attn, rows, w(`${p}self_attn.o_proj.weight`), null, hidden, Hq * D);
    const h1 = h.map((value, i) => value + o[i]);
    const y = rmsNorm64(h1, rows, hidden, w(`${p}post_attention_layernorm.weight`));
    const gate = linear64(y, rows, w(`${p}mlp.gate_proj.weight`), null, inter, hidden);
    const up = linear64(y, rows, w(`${p}mlp.up_proj.weight`), null, inter, hidden);
    const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
    const down = linear64(act, rows, w(`${p}mlp.down_proj.weight`), null, hidden, inter);
    const h2 = h1.map((value, i) => value + down[i]);
    // Compare only real tokens: padded rows are garbage by definition (fixtures README §1).
    const expected = batch.f64('hidden.layer.0');
    const got: number[] = [];
    const want: number[] = [];
    for (let r = 0; r < rows; r++) {
      if (mask[r] !== 1) continue;
      for (let i = 0; i < hidden; i++) {
        got.push(h2[r * hidden + i]);
        want.push(expected[r * hidden + i]);
      }
    }
    expect(mask.some((m) => m === 0)).toBe(true); // the case really is left padded
    // q / k / v and the tables are float32 in the ops (relative rounding 6e-8; angles up to ~40 rad
    // rounded to float32, ~2e-6 absolute, as HF's float32 angles). Measured: 2.4e-6 on values up to
    // 7.6, so 1e-5 (4x margin). For scale: a wrong mrope_section moves this layer by 0.22, dropping
    // the padding mask by 7.0.
    expectClose(got, want, { atol: 1e-5 }, 'hidden.layer.0 (real tokens)');
  });

  it(`vision block 0 of ${batchName.name} (2-D RoPE, one segment per image)`, () => {
    const [N, E] = batch.shape('vision.patch_embed');
    const H = config.vision_config.num_heads;
    const D = E / H;
    const ratio = config.vision_config.mlp_ratio;
    const p = 'visual.blocks.0.';
    const h = batch.f64('vision.patch_embed');
    const a = layerNorm64(h, N, E, w(`${p}norm1.weight`), w(`${p}norm1.bias`));
    const qkv = linear64(a, N, w(`${p}attn.qkv.weight`), w(`${p}attn.qkv.bias`), 3 * E, E);
    // The 3E outputs are [q | k | v], heads contiguous inside each (spec §2.5).
    const part = (t: number) => {
      const out = new Float64Array(N * E);
      for (let r = 0; r < N; r++) out.set(qkv.subarray(r * 3 * E + t * E, r * 3 * E + (t + 1) * E), r * E);
      return out;
    };
    const cu = Array.from(batch.i32('vision.cu_seqlens'));
    // One segment per image, t * h * w patches each (public case-batch: [0, 24, 40]).
    const grid = batch.i32('image_grid_thw');
    const segments = [0];
    for (let i = 0; i < grid.length; i += 3)
      segments.push(segments.at(-1)! + grid[i] * grid[i + 1] * grid[i + 2]);
    expect(cu).toEqual(segments);
    const attn = opsAttention(
      part(0),
      part(1),
      part(2),
      [N, H, D],
      [N, H, D],
      () => visionRotaryCosSin(Tensor.from(batch.i32('vision.rot_pos_ids'), [N, 2], { dtype: 'int32' }), D),
      { causal: false, cuSeqlens: cu },
    );
    const o = linear64(attn, N, w(`${p}attn.proj.weight`), w(`${p}attn.proj.bias`), E, E);
    const h1 = h.map((value, i) => value + o[i]);
    const m = layerNorm64(h1, N, E, w(`${p}norm2.weight`), w(`${p}norm2.bias`));
    const fc1 = linear64(m, N, w(`${p}mlp.fc1.weight`), w(`${p}mlp.fc1.bias`), ratio * E, E);
    const act = fc1.map((x) => x / (1 + Math.exp(-1.702 * x)));
    const fc2 = linear64(act, N, w(`${p}mlp.fc2.weight`), w(`${p}mlp.fc2.bias`), E, ratio * E);
    const h2 = h1.map((value, i) => value + fc2[i]);
    // Same float32 budget as the LLM layer (measured 9e-7 on values up to 5.1).
    expectClose(h2, batch.f64('vision.block.0'), { atol: 1e-5 }, 'vision.block.0');
  });
});
