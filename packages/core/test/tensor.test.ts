import { describe, expect, it } from 'vitest';
import { add, memoryStats, mul, noGrad, scale, sumAll, Tensor, tidy } from '../src/index.js';

describe('Tensor memory', () => {
  it('creation, copy out, views without copies', () => {
    tidy(() => {
      const t = Tensor.from([1, 2, 3, 4, 5, 6], [3, 2]);
      expect(Array.from(t.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6]);
      const v = t.slice(1, 3);
      expect(v.shape).toEqual([2, 2]);
      expect(Array.from(v.toFloat32Array())).toEqual([3, 4, 5, 6]);
      expect(v.storage).toBe(t.storage);
      expect(t.reshape([2, -1]).shape).toEqual([2, 3]);
      const ids = Tensor.from(Int32Array.of(4, 5), [2]);
      expect(ids.dtype).toBe('int32');
      expect(Array.from(ids.toTypedArray())).toEqual([4, 5]);
    });
  });

  it('tidy frees everything but what it returns; dispose frees at once', () => {
    const before = memoryStats().currentBytes;
    const kept = tidy(() => {
      const a = Tensor.from([1, 2], [2]);
      const b = add(a, a);
      scale(b, 3);
      return b;
    });
    expect(memoryStats().currentBytes - before).toBe(8);
    kept.dispose();
    expect(memoryStats().currentBytes).toBe(before);
    kept.dispose(); // idempotent
  });

  it('a view keeps the memory alive after the original is disposed', () => {
    const t = Tensor.from([1, 2, 3, 4], [4]);
    const v = t.slice(2, 4);
    t.dispose();
    expect(Array.from(v.toFloat32Array())).toEqual([3, 4]);
    v.dispose();
  });

  it('use after dispose and bad shapes are clear errors', () => {
    const t = Tensor.from([1, 2], [2]);
    t.dispose();
    expect(() => t.toFloat32Array()).toThrow(
      /toTypedArray: tensor \(Tensor \[2\] float32 cpu\) was disposed/,
    );
    expect(() => tidy(() => add(t, t))).toThrow(/add: a \(Tensor \[2\] float32 cpu\) was disposed/);
    expect(() => Tensor.from([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
    expect(() => tidy(() => Tensor.zeros([2, 3]).reshape([4, 2]))).toThrow(
      /cannot view \[2, 3\] \(6 elements\) as \[4, 2\]/,
    );
    expect(() => tidy(() => Tensor.zeros([2, 3]).slice(1, 3))).toThrow(
      /\[1, 3\) is not a range of the first axis of \[2, 3\]/,
    );
    expect(() => tidy(() => add(Tensor.zeros([2]), Tensor.from(Int32Array.of(1, 2), [2])))).toThrow(
      /b has dtype int32, expected float32/,
    );
  });
});

describe('autograd', () => {
  it('gradients accumulate across backward calls until zeroed', () => {
    const x = Tensor.from([1, 2, 3], [3], { requiresGrad: true });
    tidy(() => sumAll(mul(x, x)).backward());
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([2, 4, 6]);
    tidy(() => sumAll(scale(x, 10)).backward());
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([12, 14, 16]);
    x.zeroGrad();
    expect(x.grad).toBeNull();
    x.dispose();
  });

  it('a tensor used twice gets both contributions (x + x, and add handing one grad to two inputs)', () => {
    const x = Tensor.from([1, -2], [2], { requiresGrad: true });
    const y = Tensor.from([3, 4], [2], { requiresGrad: true });
    tidy(() => sumAll(mul(add(x, y), add(x, x))).backward());
    // d/dx sum((x + y) * 2x) = 2x + 2(x + y) * ... = 4x + 2y;  d/dy = 2x
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([10, 0]);
    expect(Array.from(y.grad!.toFloat32Array())).toEqual([2, -4]);
    x.dispose();
    y.dispose();
  });

  it('saved activations survive tidy; the graph is freed after backward', () => {
    const x = Tensor.from([1, 2], [2], { requiresGrad: true });
    const loss = tidy(() => sumAll(mul(scale(x, 2), x)));
    loss.backward();
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([4, 8]);
    expect(() => loss.backward()).toThrow(/graph was already freed .* retainGraph/);
    loss.dispose();
    x.dispose();
  });

  it('retainGraph allows a second backward', () => {
    const x = Tensor.from([3], [1], { requiresGrad: true });
    const loss = tidy(() => sumAll(mul(x, x)));
    loss.backward(undefined, { retainGraph: true });
    loss.backward();
    expect(x.grad!.item()).toBe(12);
    loss.dispose();
    x.dispose();
  });

  it('noGrad records nothing; backward needs a scalar or a gradient', () => {
    const x = Tensor.from([1, 2], [2], { requiresGrad: true });
    tidy(() => {
      const y = noGrad(() => mul(x, x));
      expect(y.requiresGrad).toBe(false);
      expect(() => y.backward()).toThrow(/does not require grad/);
      const z = mul(x, x);
      expect(() => z.backward()).toThrow(/is not a scalar/);
      z.backward(Tensor.from([1, 1], [2]));
    });
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([2, 4]);
    x.dispose();
  });

  it('tidy releases graph nodes that the returned value does not need', () => {
    const x = Tensor.from([1, 2, 3, 4], [4], { requiresGrad: true });
    const before = memoryStats().currentBytes;
    const value = tidy(() => sumAll(mul(scale(x, 2), x)).item());
    expect(value).toBe(60);
    expect(memoryStats().currentBytes).toBe(before);
    x.dispose();
  });
});
