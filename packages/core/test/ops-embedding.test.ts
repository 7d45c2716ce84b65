import { ops } from '@othink/native';
import { randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { embedding, Tensor, tidy } from '../src/index.js';
import { gradcheck } from './gradcheck.js';

function ints(n: number, seed: number, max: number): Int32Array {
  const rand = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(rand() * max));
}

/** dtable of the lookup from the definition: float32 sums in the order of the ids (Math.fround). */
function scatterAddRef(ids: Int32Array, g: Float32Array, vocab: number, hidden: number): Float32Array {
  const out = new Float32Array(vocab * hidden);
  ids.forEach((id, i) => {
    for (let j = 0; j < hidden; j++)
      out[id * hidden + j] = Math.fround(out[id * hidden + j] + g[i * hidden + j]);
  });
  return out;
}

function lookup(
  ids: Int32Array,
  idsShape: number[],
  table: Float32Array,
  tableShape: number[],
  g: Float32Array,
) {
  return tidy(() => {
    const t = Tensor.from(table, tableShape, { requiresGrad: true });
    const out = embedding(Tensor.from(ids, idsShape, { dtype: 'int32' }), t);
    out.backward(Tensor.from(g, out.shape));
    return { shape: out.shape, y: out.toFloat32Array(), dtable: t.grad!.toFloat32Array() };
  });
}

describe('embedding', () => {
  it('gathers rows (exact) and scatter-adds the gradient with repeated ids', () => {
    const [vocab, hidden] = [11, 7];
    const ids = Int32Array.from([3, 0, 10, 3, 3, 7]); // 3 three times, 10 = the last row
    const table = randomNormal(vocab * hidden, seededRandom(1));
    const g = randomNormal(ids.length * hidden, seededRandom(2));
    const got = lookup(ids, [2, 3], table, [vocab, hidden], g);
    expect(got.shape).toEqual([2, 3, hidden]);
    const y = new Float32Array(ids.length * hidden);
    ids.forEach((id, i) => {
      y.set(table.subarray(id * hidden, (id + 1) * hidden), i * hidden);
    });
    // A copy: bit-exact.
    expect(Array.from(got.y)).toEqual(Array.from(y));
    // The kernel adds the rows of each id in id order in float32, as the reference does: exact.
    expect(Array.from(got.dtable)).toEqual(Array.from(scatterAddRef(ids, g, vocab, hidden)));
    // Rows never looked up get exactly 0.
    expect(Array.from(got.dtable.subarray(1 * hidden, 2 * hidden))).toEqual(new Array(hidden).fill(0));
  });

  it('large and heavily repeated: parallel columns, deterministic, equal to the ordered float32 sum', () => {
    // 4000 ids over 50 rows of 96 (two column blocks of 64), 384K gradient elements: the parallel
    // path. Every row is hit ~80 times.
    const [vocab, hidden, n] = [50, 96, 4000];
    const ids = ints(n, 3, vocab);
    const table = randomNormal(vocab * hidden, seededRandom(4));
    const g = randomNormal(n * hidden, seededRandom(5));
    const a = lookup(ids, [n], table, [vocab, hidden], g);
    const b = lookup(ids, [n], table, [vocab, hidden], g);
    expect(Buffer.from(a.dtable.buffer).equals(Buffer.from(b.dtable.buffer))).toBe(true);
    expect(Array.from(a.dtable)).toEqual(Array.from(scatterAddRef(ids, g, vocab, hidden)));
  });

  it('a scalar id gives one row; no ids give an empty result and a zero gradient', () => {
    const table = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const one = tidy(() => {
      const row = embedding(
        Tensor.from(Int32Array.from([2]), [], { dtype: 'int32' }),
        Tensor.from(table, [3, 2]),
      );
      return { shape: row.shape, y: Array.from(row.toFloat32Array()) };
    });
    expect(one).toEqual({ shape: [2], y: [5, 6] });
    const none = lookup(new Int32Array(0), [0], table, [3, 2], new Float32Array(0));
    expect(none.shape).toEqual([0, 2]);
    expect(Array.from(none.dtable)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('finite-difference gradient for the table (ids constant, with repeats)', () => {
    gradcheck(
      (ids, table) => embedding(ids, table),
      [
        { shape: [3, 5], dtype: 'int32', constant: true, data: Float32Array.from(ints(15, 6, 7)) },
        { shape: [7, 3] },
      ],
    );
  });

  it('ids out of range name the position and value; wrong dtypes and shapes are rejected', () => {
    const table = Tensor.zeros([10, 4]);
    const ids = (v: number[]) => Tensor.from(Int32Array.from(v), [v.length], { dtype: 'int32' });
    expect(() => tidy(() => embedding(ids([1, 2, 3, 10]), table))).toThrow(
      'ops.embedding: ids[3] = 10 is out of range for a table of 10 rows (ids must be in [0, 10))',
    );
    expect(() => tidy(() => embedding(ids([0, -1]), table))).toThrow(/ids\[1\] = -1 is out of range/);
    // The backward checks too (its ids are the saved ones: the same values).
    expect(() =>
      ops.embeddingBackward({
        grad: new Float32Array(8),
        ids: Int32Array.from([0, 12]),
        gradTable: new Float32Array(40),
        vocab: 10,
        hidden: 4,
      }),
    ).toThrow('ops.embeddingBackward: ids[1] = 12 is out of range');
    // With an empty table width no kernel runs, and the ids are still checked.
    expect(() => tidy(() => embedding(ids([5]), Tensor.zeros([3, 0])))).toThrow(
      'embedding: ids[0] = 5 is out of range for a table of 3 rows',
    );
    expect(() => tidy(() => embedding(Tensor.from([1, 2], [2]), table))).toThrow(
      'embedding: ids has dtype float32, expected int32',
    );
    expect(() => tidy(() => embedding(ids([1]), Tensor.zeros([10, 4], { dtype: 'int32' })))).toThrow(
      'embedding: table has dtype int32, expected float32',
    );
    expect(() => tidy(() => embedding(ids([1]), Tensor.zeros([40])))).toThrow(
      'embedding: table [40] must be 2-D [vocab, hidden]',
    );
    table.dispose();
    expect(() =>
      ops.embedding({
        ids: Int32Array.from([0, 1]),
        table: new Float32Array(40),
        out: new Float32Array(4),
        vocab: 10,
        hidden: 4,
      }),
    ).toThrow('ops.embedding: out has 4 elements; expected 8 ([ids, hidden] = [2, 4])');
  });
});
