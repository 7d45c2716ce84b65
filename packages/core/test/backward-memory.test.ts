// The backward pass frees gradients as it goes (tensor/backward.ts): a node's temporaries when its
// backward returns, a node's output gradient once passed on, and a leaf's first gradient becomes
// leaf.grad without a copy when nothing else holds it. These check the memory bound and that no
// gradient is ever shared between two owners (a later in-place accumulation would corrupt it).
import { describe, expect, it } from 'vitest';
import { add, linear, memoryStats, mul, resetPeakMemory, scale, sumAll, Tensor, tidy } from '../src/index.js';

function leaf(values: number[], shape: number[]): Tensor {
  const t = Tensor.from(values, shape);
  t.requiresGrad = true;
  return t;
}

describe('backward memory', () => {
  it('holds a few gradients of a long chain at a time, not one per op', () => {
    const n = 1 << 16; // 256 KiB per tensor
    const x = leaf(
      Array.from({ length: n }, (_, i) => (i % 7) - 3),
      [n],
    );
    const depth = 24;
    tidy(() => {
      let h = x;
      for (let i = 0; i < depth; i++) h = scale(h, 1.01);
      const loss = sumAll(h);
      const before = memoryStats().currentBytes;
      resetPeakMemory();
      loss.backward();
      // The old pass kept all 24 intermediate gradients (6 MiB) to its end; now: x.grad plus the
      // one in flight and its successor.
      expect(memoryStats().peakBytes - before).toBeLessThanOrEqual(4 * n * 4);
    });
    const g = x.grad!.toFloat32Array();
    expect(g[0]).toBeCloseTo(1.01 ** depth, 5);
    expect(g[n - 1]).toBeCloseTo(1.01 ** depth, 5);
    x.dispose();
    x.zeroGrad();
  });

  it('one gradient handed to two inputs (add) stays separate: leaf + leaf, leaf + graph, x + x', () => {
    const a = leaf([1, 2, 3], [3]);
    const b = leaf([4, 5, 6], [3]);
    const w = leaf([1, 1, 1], [3]);
    tidy(() => sumAll(add(a, b)).backward());
    expect(Array.from(a.grad!.toFloat32Array())).toEqual([1, 1, 1]);
    expect(Array.from(b.grad!.toFloat32Array())).toEqual([1, 1, 1]);
    expect(a.grad!.storage).not.toBe(b.grad!.storage);
    // A second backward accumulates into a.grad in place; b.grad must not move.
    tidy(() => sumAll(mul(a, Tensor.from([2, 3, 4], [3]))).backward());
    expect(Array.from(a.grad!.toFloat32Array())).toEqual([3, 4, 5]);
    expect(Array.from(b.grad!.toFloat32Array())).toEqual([1, 1, 1]);
    // The same gradient to a leaf and to a graph node, and x + x.
    tidy(() => sumAll(add(w, scale(w, 2))).backward());
    expect(Array.from(w.grad!.toFloat32Array())).toEqual([3, 3, 3]);
    tidy(() => sumAll(add(w, w)).backward());
    expect(Array.from(w.grad!.toFloat32Array())).toEqual([5, 5, 5]);
    for (const t of [a, b, w]) {
      t.zeroGrad();
      t.dispose();
    }
  });

  it('a leaf used by several ops sums its gradients; adopted gradients own their memory', () => {
    // y = x W^T + b used twice: W and b receive two gradients each; x.grad is adopted from matmul.
    const x = leaf([1, 2, 3, 4, 5, 6], [2, 3]);
    const weight = leaf([1, 0, -1, 2, 1, 0], [2, 3]);
    const bias = leaf([0.5, -0.5], [2]);
    tidy(() => {
      const y = linear(x, weight, bias);
      sumAll(add(y, mul(y, y))).backward();
    });
    // d/dy = 1 + 2y; y = [[-2+0.5, 4-0.5], [-2+0.5, 13-0.5]] = [[-1.5, 3.5], [-1.5, 12.5]]
    const gy = [
      [1 - 3, 1 + 7],
      [1 - 3, 1 + 25],
    ];
    expect(Array.from(bias.grad!.toFloat32Array())).toEqual([gy[0][0] + gy[1][0], gy[0][1] + gy[1][1]]);
    const gw = [0, 1].flatMap((o) => [0, 1, 2].map((i) => gy[0][o] * [1, 2, 3][i] + gy[1][o] * [4, 5, 6][i]));
    expect(Array.from(weight.grad!.toFloat32Array())).toEqual(gw);
    const gx = [0, 1].flatMap((r) =>
      [0, 1, 2].map((i) => gy[r][0] * [1, 0, -1][i] + gy[r][1] * [2, 1, 0][i]),
    );
    expect(Array.from(x.grad!.toFloat32Array())).toEqual(gx);
    expect(x.grad!.sharesMemory).toBe(false);
    expect(weight.grad!.sharesMemory).toBe(false);
    for (const t of [x, weight, bias]) {
      t.zeroGrad();
      t.dispose();
    }
  });

  it("frees everything it made: only the leaves' gradients remain", () => {
    const x = leaf([1, 2, 3, 4], [2, 2]);
    const w = leaf([1, 2, 3, 4], [2, 2]);
    const before = memoryStats().currentBytes;
    tidy(() => sumAll(mul(linear(x, w), linear(w, x))).backward());
    expect(memoryStats().currentBytes - before).toBe(2 * 4 * 4);
    for (const t of [x, w]) {
      t.zeroGrad();
      t.dispose();
    }
  });
});

describe('tidy results', () => {
  it('keeps tensors next to typed arrays, which it returns as they are without walking them', () => {
    const logits = new Float32Array(1 << 22).fill(0.5);
    const out = tidy(() => ({ logits, ids: Int32Array.of(1, 2), t: Tensor.from([1, 2], [2]) }));
    expect(out.logits).toBe(logits);
    expect(Array.from(out.t.toFloat32Array())).toEqual([1, 2]);
    out.t.dispose();
  });
});
