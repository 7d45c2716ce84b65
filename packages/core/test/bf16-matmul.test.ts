// bfloat16 matmul / linear (CPU reference twin, and the cuBLAS tensor-core path where there is a GPU).
// Inputs are random bfloat16 values, so the reference is exact: their float64 product (bf16 x bf16
// products are exact in float32 too, 8 x 8 significant bits). The bound, per output element:
//   |C - ref| <= 2^-8 |ref| + (1 + 2^-8) * k * 2^-24 * sum_p |a_ip| |b_pj|
// - 2^-8 |ref|: the one rounding of the result to bfloat16 (8 significant bits, half an ulp);
// - k * 2^-24 * sum |a||b|: float32 accumulation of k exact products, in any order (the classic
//   recursive-summation bound gamma_k ~ k u with u = 2^-24), scaled by the rounding that follows.
// A float32 result (outDtype 'float32') has the second term alone. On the CPU the bf16 path is also
// bit-identical, by its definition, to the float32 sgemm of the widened inputs rounded once.
import * as native from '@othink/native';
import { describeGpu, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { cast, type Device, linear, matmul, Tensor, tidy } from '../src/index.js';

const bf16ToNumber = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0];

/** float32 -> bf16 bits, round to nearest even (finite values only: what the tests feed it). */
function roundBf16(x: number): number {
  const b = new Uint32Array(new Float32Array([x]).buffer)[0];
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** n random bfloat16 values (bits): normal(0, 1) truncated to bf16, so every value is exactly known. */
function randomBf16(n: number, rand: () => number): Uint16Array {
  const out = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    f[0] = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    out[i] = u[0] >>> 16;
  }
  return out;
}

const bf16Tensor = (
  bits: Uint16Array,
  shape: number[],
  device: Device = 'cpu',
  requiresGrad = false,
): Tensor => Tensor.from(bits, shape, { dtype: 'bfloat16', device, requiresGrad });

const values = (t: Tensor): Float64Array => {
  const raw = t.to('cpu').toTypedArray();
  if (t.dtype === 'float32') return Float64Array.from(raw);
  return Float64Array.from(raw as Uint16Array, bf16ToNumber);
};

/**
 * Float64 reference of op(A_i) @ op(B_i) for row-major stored matrices, and sum |a||b| per element.
 * a: batch x (transA ? [k, m] : [m, k]); b: (shared ? 1 : batch) x (transB ? [n, k] : [k, n]).
 */
function reference(
  a: Float64Array,
  b: Float64Array,
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  shared: boolean,
): { ref: Float64Array; mag: Float64Array } {
  const ref = new Float64Array(batch * m * n);
  const mag = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++) {
    const ao = z * m * k;
    const bo = shared ? 0 : z * k * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        let t = 0;
        for (let p = 0; p < k; p++) {
          const x = a[ao + (transA ? p * m + i : i * k + p)];
          const y = b[bo + (transB ? j * k + p : p * n + j)];
          s += x * y;
          t += Math.abs(x * y);
        }
        ref[z * m * n + i * n + j] = s;
        mag[z * m * n + i * n + j] = t;
      }
  }
  return { ref, mag };
}

/** Checks the bound of the header; returns the worst ratio |err| / bound (<= 1 passes). */
function expectWithinBound(
  got: Float64Array,
  ref: Float64Array,
  mag: Float64Array,
  k: number,
  roundedToBf16: boolean,
  what: string,
): number {
  expect(got.length).toBe(ref.length);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const acc = k * 2 ** -24 * mag[i];
    const bound = roundedToBf16 ? 2 ** -8 * Math.abs(ref[i]) + (1 + 2 ** -8) * acc : acc;
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= bound))
      throw new Error(
        `${what}: element ${i} is ${got[i]}, reference ${ref[i]} (error ${err} > bound ${bound})`,
      );
    if (bound > 0) worst = Math.max(worst, err / bound);
  }
  return worst;
}

const cases = [
  { name: '2-D', batch: 1, m: 17, n: 23, k: 70, transA: false, transB: false, shared: true, rank2: true },
  { name: '2-D, b^T', batch: 1, m: 9, n: 31, k: 129, transA: false, transB: true, shared: true, rank2: true },
  { name: '2-D, a^T', batch: 1, m: 12, n: 8, k: 40, transA: true, transB: false, shared: true, rank2: true },
  {
    name: '2-D, a^T b^T',
    batch: 1,
    m: 5,
    n: 14,
    k: 33,
    transA: true,
    transB: true,
    shared: true,
    rank2: true,
  },
  {
    name: 'batched',
    batch: 3,
    m: 6,
    n: 10,
    k: 25,
    transA: false,
    transB: false,
    shared: false,
    rank2: false,
  },
  {
    name: 'batched, a^T b^T',
    batch: 2,
    m: 7,
    n: 4,
    k: 19,
    transA: true,
    transB: true,
    shared: false,
    rank2: false,
  },
  {
    name: 'batched a, shared b^T',
    batch: 4,
    m: 3,
    n: 11,
    k: 21,
    transA: false,
    transB: true,
    shared: true,
    rank2: false,
  },
];

function runCase(c: (typeof cases)[number], device: Device, seed: number): void {
  tidy(() => {
    const rand = seededRandom(seed);
    const { batch, m, n, k, transA, transB, shared } = c;
    const lead = c.rank2 ? [] : [batch];
    const aShape = [...lead, ...(transA ? [k, m] : [m, k])];
    const bShape = [...(shared ? [] : lead), ...(transB ? [n, k] : [k, n])];
    const aBits = randomBf16(batch * m * k, rand);
    const bBits = randomBf16((shared ? 1 : batch) * k * n, rand);
    const a = bf16Tensor(aBits, aShape, device, true);
    const b = bf16Tensor(bBits, bShape, device, true);
    const out = matmul(a, b, { transA, transB });
    expect(out.dtype).toBe('bfloat16');
    expect(out.device).toBe(device);
    expect(out.shape).toEqual([...lead, m, n]);
    const av = Float64Array.from(aBits, bf16ToNumber);
    const bv = Float64Array.from(bBits, bf16ToNumber);
    const { ref, mag } = reference(av, bv, batch, m, n, k, transA, transB, shared);
    expectWithinBound(values(out), ref, mag, k, true, `${c.name} forward`);

    // The float32 accumulator itself (outDtype float32): only the accumulation error.
    const out32 = matmul(a, b, { transA, transB, outDtype: 'float32' });
    expect(out32.dtype).toBe('float32');
    expectWithinBound(values(out32), ref, mag, k, false, `${c.name} forward, float32 out`);

    // Backward with a bfloat16 output gradient g: dA = g op(B)^T, dB = op(A)^T g, in bfloat16.
    const gBits = randomBf16(batch * m * n, rand);
    out.backward(bf16Tensor(gBits, out.shape, device));
    expect(a.grad?.dtype).toBe('bfloat16');
    expect(b.grad?.dtype).toBe('bfloat16');
    const gv = Float64Array.from(gBits, bf16ToNumber);
    // dop(A) = g [m, n] @ op(B)^T [n, k]; dA is its transpose when transA. op(B)^T is B stored
    // [k, n] read transposed, or B stored [n, k] as is.
    const dOpA = reference(gv, bv, batch, m, k, n, false, !transB, shared);
    const dA = transA ? transposeEach(dOpA, batch, m, k) : dOpA;
    expectWithinBound(values(a.grad!), dA.ref, dA.mag, n, true, `${c.name} grad a`);
    // dop(B) = op(A)^T [k, m] @ g [m, n], summed over the batch when b is shared.
    const dOpB = reference(av, gv, batch, k, n, m, !transA, false, false);
    let dB = shared && batch > 1 ? sumBatches(dOpB, batch, k * n) : dOpB;
    if (transB) dB = transposeEach(dB, shared ? 1 : batch, k, n);
    expectWithinBound(values(b.grad!), dB.ref, dB.mag, shared ? batch * m : m, true, `${c.name} grad b`);
  });
}

function transposeEach(
  r: { ref: Float64Array; mag: Float64Array },
  batch: number,
  rows: number,
  cols: number,
) {
  const t = (x: Float64Array) => {
    const out = new Float64Array(x.length);
    for (let z = 0; z < batch; z++)
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++)
          out[z * rows * cols + j * rows + i] = x[z * rows * cols + i * cols + j];
    return out;
  };
  return { ref: t(r.ref), mag: t(r.mag) };
}

function sumBatches(r: { ref: Float64Array; mag: Float64Array }, batch: number, size: number) {
  const s = (x: Float64Array) => {
    const out = new Float64Array(size);
    for (let z = 0; z < batch; z++) for (let i = 0; i < size; i++) out[i] += x[z * size + i];
    return out;
  };
  return { ref: s(r.ref), mag: s(r.mag) };
}

describe('bfloat16 matmul (CPU reference twin)', () => {
  cases.forEach((c, i) => {
    it(`${c.name}: forward and backward within one bf16 rounding plus float32 accumulation`, () =>
      runCase(c, 'cpu', 100 + i));
  });

  it('is by definition the float32 sgemm of the widened inputs, rounded to bf16 once', () => {
    tidy(() => {
      const rand = seededRandom(7);
      for (const [shape, bShape, transB] of [
        [[37, 300], [300, 41], false],
        [[2, 19, 64], [2, 64, 33], false],
        [[50, 96], [70, 96], true],
      ] as [number[], number[], boolean][]) {
        const a = bf16Tensor(
          randomBf16(
            shape.reduce((x, y) => x * y),
            rand,
          ),
          shape,
        );
        const b = bf16Tensor(
          randomBf16(
            bShape.reduce((x, y) => x * y),
            rand,
          ),
          bShape,
        );
        const wide = matmul(cast(a, 'float32'), cast(b, 'float32'), { transB }).toFloat32Array();
        const expected = Uint16Array.from(wide, roundBf16);
        expect(matmul(a, b, { transB }).toTypedArray()).toEqual(expected);
        expect(matmul(a, b, { transB, outDtype: 'float32' }).toFloat32Array()).toEqual(wide);
      }
    });
  });

  it('rounds a float32 output gradient to bf16 once and keeps the input gradients bf16', () => {
    tidy(() => {
      const rand = seededRandom(11);
      const aBits = randomBf16(4 * 6, rand);
      const bBits = randomBf16(6 * 5, rand);
      const a = bf16Tensor(aBits, [4, 6], 'cpu', true);
      const b = bf16Tensor(bBits, [6, 5], 'cpu', true);
      const out = matmul(a, b, { outDtype: 'float32' });
      const g = Float32Array.from({ length: 20 }, () => rand() - 0.5);
      out.backward(Tensor.from(g, [4, 5]));
      expect(a.grad!.dtype).toBe('bfloat16');
      const gRounded = Float64Array.from(g, (x) => bf16ToNumber(roundBf16(x)));
      const dA = reference(gRounded, Float64Array.from(bBits, bf16ToNumber), 1, 4, 6, 5, false, true, true);
      expectWithinBound(values(a.grad!), dA.ref, dA.mag, 5, true, 'grad a from a float32 gradient');
    });
  });

  it('linear in bf16: x W^T + b rounded once, gradients in bf16', () => {
    tidy(() => {
      const rand = seededRandom(13);
      const [rows, inF, outF] = [6, 48, 10];
      const xBits = randomBf16(rows * inF, rand);
      const wBits = randomBf16(outF * inF, rand);
      const biasBits = randomBf16(outF, rand);
      // x 2-D (linear then takes it without a reshape view): a leaf's gradient reached through a
      // view is copied by backward's clone, float32-only today; the 3-D form is checked without.
      const x = bf16Tensor(xBits, [rows, inF], 'cpu', true);
      const w = bf16Tensor(wBits, [outF, inF], 'cpu', true);
      const bias = bf16Tensor(biasBits, [outF], 'cpu', true);
      const y = linear(x, w, bias);
      expect(y.dtype).toBe('bfloat16');
      expect(y.shape).toEqual([rows, outF]);
      const y3 = linear(bf16Tensor(xBits, [2, 3, inF]), w.detach(), bias.detach());
      expect(y3.shape).toEqual([2, 3, outF]);
      expect(y3.toTypedArray()).toEqual(y.toTypedArray());
      const xv = Float64Array.from(xBits, bf16ToNumber);
      const wv = Float64Array.from(wBits, bf16ToNumber);
      const bv = Float64Array.from(biasBits, bf16ToNumber);
      const { ref, mag } = reference(xv, wv, 1, rows, outF, inF, false, true, true);
      for (let i = 0; i < ref.length; i++) {
        ref[i] += bv[i % outF];
        mag[i] += Math.abs(bv[i % outF]);
      }
      // k + 1 float32 terms: the bias joins the accumulator before the one rounding.
      expectWithinBound(values(y), ref, mag, inF + 1, true, 'linear forward');
      const gBits = randomBf16(rows * outF, rand);
      y.backward(bf16Tensor(gBits, y.shape));
      expect([x.grad!.dtype, w.grad!.dtype, bias.grad!.dtype]).toEqual(['bfloat16', 'bfloat16', 'bfloat16']);
      // The bias gradient: the sum over rows in float32, rounded once (g is exact in float32).
      const gv = Float64Array.from(gBits, bf16ToNumber);
      const db = new Float64Array(outF);
      const dbMag = new Float64Array(outF);
      for (let i = 0; i < gv.length; i++) {
        db[i % outF] += gv[i];
        dbMag[i % outF] += Math.abs(gv[i]);
      }
      expectWithinBound(values(bias.grad!), db, dbMag, rows, true, 'linear grad bias');
      const dW = reference(gv, xv, 1, outF, inF, rows, true, false, true);
      expectWithinBound(values(w.grad!), dW.ref, dW.mag, rows, true, 'linear grad weight');
      const dX = reference(gv, wv, 1, rows, inF, outF, false, false, true);
      expectWithinBound(values(x.grad!), dX.ref, dX.mag, outF, true, 'linear grad x');
    });
  });

  it('rejects mixed dtypes, naming both', () => {
    tidy(() => {
      const a = bf16Tensor(new Uint16Array(6), [2, 3]);
      const b = Tensor.zeros([3, 2]);
      expect(() => matmul(a, b)).toThrow(/matmul: a is bfloat16 but b is float32/);
      expect(() => matmul(b, a)).toThrow(/matmul: a is float32 but b is bfloat16/);
      expect(() => linear(a, Tensor.zeros([4, 3]))).toThrow(/linear: x is bfloat16 but weight is float32/);
      expect(() => linear(a, bf16Tensor(new Uint16Array(12), [4, 3]), Tensor.zeros([4]))).toThrow(
        /linear: x is bfloat16 but bias is float32/,
      );
      expect(() => matmul(b, Tensor.zeros([2, 3]), { outDtype: 'bfloat16' })).toThrow(
        /outDtype 'bfloat16' needs bfloat16 a and b/,
      );
      // The native op checks the same on its own (a caller bypassing the TS op).
      expect(() => native.ops.matmul({ a, b, out: Tensor.zeros([2, 2]), m: 2, n: 2, k: 3 })).toThrow(
        /ops.matmul: a is bfloat16 but b is float32/,
      );
    });
  });
});

describeGpu(native, 'bfloat16 matmul on CUDA (cuBLAS tensor cores)', () => {
  cases.forEach((c, i) => {
    it(`${c.name}: forward and backward within the same bound as the CPU twin`, () =>
      runCase(c, 'cuda', 100 + i));
  });

  it('a larger product (k = 512) within the bound, as the CPU twin is', () => {
    tidy(() => {
      const rand = seededRandom(17);
      const [m, n, k] = [64, 96, 512];
      const aBits = randomBf16(m * k, rand);
      const bBits = randomBf16(n * k, rand);
      const gpu = matmul(bf16Tensor(aBits, [m, k], 'cuda'), bf16Tensor(bBits, [n, k], 'cuda'), {
        transB: true,
      });
      const { ref, mag } = reference(
        Float64Array.from(aBits, bf16ToNumber),
        Float64Array.from(bBits, bf16ToNumber),
        1,
        m,
        n,
        k,
        false,
        true,
        true,
      );
      expectWithinBound(values(gpu), ref, mag, k, true, 'cuda 64x96x512');
    });
  });
});
