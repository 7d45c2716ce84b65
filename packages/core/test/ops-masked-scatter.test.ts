import { ops } from '@othink/native';
import { randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { maskedScatterRows, Tensor, tidy } from '../src/index.js';
import { gradcheck } from './gradcheck.js';

/** The definition (spec §4.3): walk the rows in order; the k-th masked row takes source row k. */
function scatterRef(
  base: Float32Array,
  mask: Int32Array,
  source: Float32Array,
  hidden: number,
): Float32Array {
  const out = Float32Array.from(base);
  let k = 0;
  mask.forEach((m, r) => {
    if (m === 1) out.set(source.subarray(k++ * hidden, k * hidden), r * hidden);
  });
  return out;
}

function scatter(
  base: Float32Array,
  mask: Int32Array,
  source: Float32Array,
  hidden: number,
  g: Float32Array,
) {
  return tidy(() => {
    const b = Tensor.from(base, [mask.length, hidden], { requiresGrad: true });
    const s = Tensor.from(source, [source.length / hidden, hidden], { requiresGrad: true });
    const out = maskedScatterRows(b, Tensor.from(mask, [mask.length], { dtype: 'int32' }), s);
    out.backward(Tensor.from(g, out.shape));
    return { y: out.toFloat32Array(), gBase: b.grad!.toFloat32Array(), gSource: s.grad!.toFloat32Array() };
  });
}

describe('maskedScatterRows', () => {
  it('replaces the masked rows in order; gradients split between base and source (exact copies)', () => {
    // Token ids of two sequences flattened row-major, 151655 = <|image_pad|> (spec §4): the mask
    // is ids == 151655 and the image features fill those rows in order.
    const ids = [151644, 151652, 151655, 151655, 151655, 151653, 9707, 151652, 151655, 151655, 151653];
    const mask = Int32Array.from(ids, (id) => (id === 151655 ? 1 : 0));
    const hidden = 7;
    const base = randomNormal(ids.length * hidden, seededRandom(1));
    const source = randomNormal(5 * hidden, seededRandom(2));
    const g = randomNormal(ids.length * hidden, seededRandom(3));
    const got = scatter(base, mask, source, hidden, g);
    expect(Array.from(got.y)).toEqual(Array.from(scatterRef(base, mask, source, hidden)));
    // d base: g at the kept rows, exactly 0 at the replaced ones (no gradient reaches the pad
    // tokens' embeddings through this path, spec §4.3 / §8.10).
    const gBase = Float32Array.from(g);
    mask.forEach((m, r) => {
      if (m) gBase.fill(0, r * hidden, (r + 1) * hidden);
    });
    expect(Array.from(got.gBase)).toEqual(Array.from(gBase));
    // d source: the masked rows of g, in order.
    const gSource: number[] = [];
    mask.forEach((m, r) => {
      if (m) gSource.push(...g.subarray(r * hidden, (r + 1) * hidden));
    });
    expect(Array.from(got.gSource)).toEqual(gSource);
  });

  it('large inputs take the parallel path with the same result', () => {
    // 600 rows of 128 = 76,800 elements (over the kernels' 64K threshold), every third row masked.
    const [rows, hidden] = [600, 128];
    const mask = Int32Array.from({ length: rows }, (_, r) => (r % 3 === 1 ? 1 : 0));
    const base = randomNormal(rows * hidden, seededRandom(4));
    const source = randomNormal(200 * hidden, seededRandom(5));
    const got = scatter(base, mask, source, hidden, randomNormal(rows * hidden, seededRandom(6)));
    expect(Array.from(got.y)).toEqual(Array.from(scatterRef(base, mask, source, hidden)));
  });

  it('no masked rows: the output is base and source [0, H] gets an empty gradient', () => {
    const base = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const got = scatter(
      base,
      new Int32Array(3),
      new Float32Array(0),
      2,
      Float32Array.from([1, 1, 1, 1, 1, 1]),
    );
    expect(Array.from(got.y)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(got.gBase)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(got.gSource.length).toBe(0);
  });

  it('finite-difference gradients for base and source (mask constant)', () => {
    gradcheck(
      (base, mask, source) => maskedScatterRows(base, mask, source),
      [
        { shape: [5, 7] },
        { shape: [5], dtype: 'int32', constant: true, data: Float32Array.from([0, 1, 1, 0, 1]) },
        { shape: [3, 7] },
      ],
    );
  });

  it('bad inputs: count mismatch with both numbers, mask values, shapes, dtypes', () => {
    const mask = (v: number[]) => Tensor.from(Int32Array.from(v), [v.length], { dtype: 'int32' });
    expect(() =>
      tidy(() => maskedScatterRows(Tensor.zeros([4, 3]), mask([1, 0, 1, 1]), Tensor.zeros([2, 3]))),
    ).toThrow(
      'ops.maskedScatterRows: the mask selects 3 rows but source has 2 rows; they must match (expected source [3, 3])',
    );
    expect(() =>
      tidy(() => maskedScatterRows(Tensor.zeros([3, 3]), mask([1, 2, 0]), Tensor.zeros([1, 3]))),
    ).toThrow('ops.maskedScatterRows: mask[1] = 2 is not 0 or 1');
    expect(() =>
      tidy(() => maskedScatterRows(Tensor.zeros([3, 4]), mask([1, 0, 0]), Tensor.zeros([1, 3]))),
    ).toThrow('maskedScatterRows: base [3, 4] and source [1, 3] must be 2-D with the same width');
    expect(() =>
      tidy(() => maskedScatterRows(Tensor.zeros([3, 4]), mask([1, 0]), Tensor.zeros([1, 4]))),
    ).toThrow('maskedScatterRows: mask [2] must have one value per row of base [3, 4]');
    expect(() =>
      tidy(() => maskedScatterRows(Tensor.zeros([2, 4]), Tensor.from([1, 0], [2]), Tensor.zeros([1, 4]))),
    ).toThrow('maskedScatterRows: mask has dtype float32, expected int32');
    expect(() =>
      tidy(() =>
        maskedScatterRows(Tensor.zeros([2, 4]), mask([1, 0]), Tensor.zeros([1, 4], { dtype: 'int32' })),
      ),
    ).toThrow('maskedScatterRows: source has dtype int32, expected float32');
    // Empty rows skip the kernel; the count is still checked.
    expect(() =>
      tidy(() => maskedScatterRows(Tensor.zeros([2, 0]), mask([1, 1]), Tensor.zeros([1, 0]))),
    ).toThrow('maskedScatterRows: the mask selects 2 rows but source has 1 row; they must match');
    expect(() =>
      ops.maskedScatterRowsBackward({
        grad: new Float32Array(8),
        mask: Int32Array.from([1, 0]),
        gradSource: new Float32Array(8),
        rows: 2,
        hidden: 4,
      }),
    ).toThrow('ops.maskedScatterRowsBackward: the mask selects 1 row but gradSource has 2 rows');
  });
});
