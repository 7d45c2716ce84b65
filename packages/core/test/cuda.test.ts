// Tensors and the basic ops on CUDA, against their CPU twins. The GPU suites run only on a CUDA
// build with a GPU (skipped elsewhere); the CPU-build suite checks the error a CPU build gives.
// Tolerances, and why:
// - add / sub / mul, copies (to, concat, narrow, split), fill: one IEEE operation or none per
//   element on both sides: bitwise equal.
// - scale (alpha * a + beta), accumulate (y + alpha * x): the GPU may fuse the multiply-add (one
//   rounding instead of two), an error of an ulp of the terms, not of the result (which cancellation
//   can make tiny): rtol 2.4e-7 plus atol 2.4e-7 * max |term|.
// - sum / mean / sumAll / sumSquares: both sides accumulate in double and round once (in other
//   orders): rtol 1e-6 (sumSquares, returned in double: 1e-12).
// - matmul: cuBLAS in true float32 (no TF32) vs a float64 reference: |err| <= 1e-5 * max(|A| |B|)
//   (float32 error over k <= 300 terms is ~1e-6 of that; TF32, 10-bit mantissas, would be ~1e-3).
//   Against the CPU sgemm the same bound.
// - AdamW: the CPU's formula term for term, float32; sqrt / division IEEE on both; FMA contraction
//   may differ by an ulp of the terms: after three steps rtol 1e-6 plus atol 1e-9 (params) or
//   1e-6 * max |m| (moments, which cancellation can make tiny).

import * as native from '@othink/native';
import { buildInfo, cuda, ops, Storage } from '@othink/native';
import { describeGpu, expectClose, maxAbs, randomNormal, seededRandom } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  accumulate,
  add,
  clipGradNorm,
  clone,
  concat,
  emptyCache,
  gradNorm,
  linear,
  matmul,
  mean,
  memoryStats,
  mul,
  narrow,
  resetPeakMemory,
  scale,
  split,
  sub,
  sum,
  sumAll,
  Tensor,
  tidy,
} from '../src/index.js';

const cudaBuild = buildInfo().cuda;
const gpu = cuda?.deviceInfo().available === true;

/** An ulp or two of the largest term of a multiply-add. */
const fmaTol = (maxTerm: number) => ({ rtol: 2.4e-7, atol: 2.4e-7 * maxTerm });
const SUM_TOL = { rtol: 1e-6, atol: 1e-30 };

function rand(n: number, seed: number, std = 1): Float32Array {
  return randomNormal(n, seededRandom(seed), std);
}

/** The values of a tensor as a plain Float32Array (copied back from any device). */
function values(t: Tensor): Float32Array {
  return t.toFloat32Array();
}

/** Runs `op` on CPU tensors and on their CUDA copies; returns both results' values. */
function twin(
  inputs: Float32Array[],
  shapes: number[][],
  op: (...ts: Tensor[]) => Tensor,
): [Float32Array, Float32Array] {
  return tidy(() => {
    const onCpu = inputs.map((x, i) => Tensor.from(x, shapes[i]));
    const onGpu = onCpu.map((t) => t.to('cuda'));
    const c = op(...onCpu);
    const g = op(...onGpu);
    expect(g.device).toBe('cuda');
    expect(g.shape).toEqual(c.shape);
    return [values(g), values(c)];
  });
}

/** Row-major op(A) @ op(B) in float64, and the bound scale max_ij sum_l |A_il| |B_lj|. */
function matmulF64(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
): { c: Float64Array; magnitude: number } {
  const c = new Float64Array(m * n);
  let magnitude = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let abs = 0;
      for (let l = 0; l < k; l++) {
        const x = transA ? a[l * m + i] : a[i * k + l];
        const y = transB ? b[j * k + l] : b[l * n + j];
        s += x * y;
        abs += Math.abs(x * y);
      }
      c[i * n + j] = s;
      magnitude = Math.max(magnitude, abs);
    }
  }
  return { c, magnitude };
}

describe.skipIf(cudaBuild)('a CPU build and the cuda device', () => {
  it('Tensor.zeros on cuda throws a clear error', () => {
    expect(() => Tensor.zeros([2], { device: 'cuda' })).toThrow(
      /Storage: this build of @othink\/native has no CUDA support.*OTHINK_CUDA=1/,
    );
    expect(() => tidy(() => Tensor.from([1, 2], [2]).to('cuda'))).toThrow(/no CUDA support/);
    // Nothing leaked by the failed allocations, and the cuda stats are empty.
    expect(memoryStats('cuda')).toMatchObject({ currentBytes: 0, allocations: 0, cachedBytes: 0 });
  });
});

describe.skipIf(!cudaBuild || gpu)('a CUDA build without a usable GPU', () => {
  it('Tensor.zeros on cuda throws the CUDA error, and nothing is counted', () => {
    expect(() => Tensor.zeros([2], { device: 'cuda' })).toThrow(/Storage: CUDA error cuda\w+/);
    expect(memoryStats('cuda')).toMatchObject({ currentBytes: 0, allocations: 0 });
  });
});

describeGpu(native, 'tensors on CUDA', () => {
  afterAll(() => emptyCache());

  it('to() round trips float32, int32 and bfloat16 tensors, views included', () => {
    tidy(() => {
      const x = rand(1001, 1);
      const t = Tensor.from(x, [7, 143]);
      const g = t.to('cuda');
      expect(g.device).toBe('cuda');
      expect(g.storage.device).toBe('cuda');
      expect(g.storage).not.toBe(t.storage);
      expect(values(g)).toEqual(x);
      expect(values(g.to('cpu'))).toEqual(x);
      // A slice starts inside its storage: the copy starts there too.
      expect(values(t.slice(2, 5).to('cuda'))).toEqual(x.subarray(2 * 143, 5 * 143));
      expect(values(g.slice(2, 5).to('cpu'))).toEqual(x.subarray(2 * 143, 5 * 143));
      const ids = Tensor.from(Int32Array.of(3, -1, 2147483647), [3]).to('cuda');
      expect(ids.dtype).toBe('int32');
      expect(Array.from(ids.toTypedArray())).toEqual([3, -1, 2147483647]);
      const bits = Uint16Array.of(0x3f80, 0xc000, 0x7fc0);
      const bf = Tensor.from(bits, [3], { dtype: 'bfloat16', device: 'cuda' });
      expect(bf.device).toBe('cuda');
      expect(Array.from(bf.to('cpu').toTypedArray())).toEqual(Array.from(bits));
      // Already there: a view of the same memory, no copy.
      expect(g.to('cuda').storage).toBe(g.storage);
      // Device to device, and empty tensors.
      expect(values(Tensor.from(x, [1001], { device: 'cuda' }))).toEqual(x);
      expect(Tensor.zeros([0, 3], { device: 'cuda' }).to('cpu').size).toBe(0);
      // item() and scalars.
      expect(Tensor.scalar(2.5, { device: 'cuda' }).item()).toBe(2.5);
    });
  });

  it('zeros are zero, also in a reused block', () => {
    tidy(() => {
      const dirty = Tensor.from(new Float32Array(4099).fill(7), [4099], { device: 'cuda' });
      dirty.dispose();
      const z = Tensor.zeros([4099], { device: 'cuda' });
      expect(maxAbs(values(z))).toBe(0);
    });
  });

  it('Storage read / write / copyFrom at offsets, with bounds checks', () => {
    const s = new Storage(64, 'cuda', true);
    try {
      s.write(Float32Array.of(1, 2, 3), 8);
      const out = new Float32Array(5);
      s.read(out, 4);
      expect(Array.from(out)).toEqual([0, 1, 2, 3, 0]);
      const host = new Storage(16, 'cpu', true);
      host.copyFrom(s, 8, 4, 12);
      const back = new Float32Array(4);
      host.read(back);
      expect(Array.from(back)).toEqual([0, 1, 2, 3]);
      host.dispose();
      expect(() => s.write(new Float32Array(17))).toThrow(/do not fit in 64 bytes/);
      expect(() => s.copyFrom(s, 0, 60, 8)).toThrow(/do not fit/);
      expect(() => s.copyFrom(s, 0, 4, 8)).toThrow(/overlap/);
    } finally {
      s.dispose();
    }
  });

  it('add / sub / mul (same shape and broadcast), scale, clone, accumulate match the CPU', () => {
    const a = rand(37 * 129, 2);
    const b = rand(129, 3);
    const c = rand(37 * 129, 4);
    for (const [op, fn] of [
      ['add', add],
      ['sub', sub],
      ['mul', mul],
    ] as const) {
      const [g1, c1] = twin([a, b], [[37, 129], [129]], fn);
      expect(g1, `${op} broadcast`).toEqual(c1);
      const [g2, c2] = twin(
        [a, c],
        [
          [37, 129],
          [37, 129],
        ],
        fn,
      );
      expect(g2, `${op} same shape`).toEqual(c2);
      const [g3, c3] = twin([a, Float32Array.of(0.5)], [[37, 129], []], fn);
      expect(g3, `${op} scalar b`).toEqual(c3);
    }
    const [gs, cs] = twin([a], [[37, 129]], (x) => scale(x, -1.7, 0.3));
    expectClose(gs, cs, fmaTol(1.7 * maxAbs(a) + 0.3), 'scale');
    const [gc, cc] = twin([a], [[37, 129]], clone);
    expect(gc).toEqual(cc);
    const [ga, ca] = twin(
      [a, c],
      [
        [37, 129],
        [37, 129],
      ],
      (x, y) => {
        const target = clone(x);
        accumulate(target, y, 0.37);
        return target;
      },
    );
    expectClose(ga, ca, fmaTol(maxAbs(a) + 0.37 * maxAbs(c)), 'accumulate');
  });

  it('fill matches the CPU', () => {
    tidy(() => {
      const t = Tensor.empty([70001], { device: 'cuda' });
      ops.fill({ out: t, value: -3.25 });
      expect(values(t).every((v) => v === -3.25)).toBe(true);
    });
  });

  it('sum / mean over every axis, sumAll (long rows, split) and the backward broadcast', () => {
    const shape = [7, 300, 5];
    const x = rand(7 * 300 * 5, 5);
    for (const axis of [0, 1, 2, -1]) {
      for (const keep of [false, true]) {
        const [gs, cs] = twin([x], [shape], (t) => sum(t, axis, keep));
        expectClose(gs, cs, SUM_TOL, `sum axis ${axis}`);
        const [gm, cm] = twin([x], [shape], (t) => mean(t, axis, keep));
        expectClose(gm, cm, SUM_TOL, `mean axis ${axis}`);
      }
    }
    // One long row (sumAll of 3M values): the axis is cut into pieces and the partials added.
    const big = rand(3_000_001, 6);
    const [gb, cb] = twin([big], [[3_000_001]], sumAll);
    expectClose(gb, cb, SUM_TOL, 'sumAll');
    // A long column axis with few outputs (a bias gradient): the column kernel is split too.
    const tall = rand(200_003 * 3, 7);
    const [gt, ct] = twin([tall], [[200_003, 3]], (t) => sum(t, 0));
    expectClose(gt, ct, SUM_TOL, 'sum over 200003 rows');
    // Many short rows: one block per row.
    const wide = rand(5000 * 33, 8);
    const [gw, cw] = twin([wide], [[5000, 33]], (t) => mean(t, 1));
    expectClose(gw, cw, SUM_TOL, 'mean of 5000 rows');
    // The backward of sum is the broadcast: gradients on both devices agree exactly.
    const grads = [false, true].map((onGpu) =>
      tidy(() => {
        const t = Tensor.from(x, shape, { requiresGrad: true });
        const input = onGpu ? t.to('cuda') : t;
        sumAll(mean(input, 1)).backward();
        const g = values(t.grad!);
        t.zeroGrad();
        return g;
      }),
    );
    expect(grads[1]).toEqual(grads[0]);
  });

  it('matmul (2-D, batched, transposes, shared b) is true float32 on cuBLAS', () => {
    const cases: [number, number, number, number, boolean, boolean, boolean][] = [
      // batch, m, n, k, transA, transB, shared b
      [1, 33, 65, 129, false, false, false],
      [1, 33, 65, 129, true, false, false],
      [1, 33, 65, 129, false, true, false],
      [1, 33, 65, 129, true, true, false],
      [3, 17, 31, 257, false, false, false],
      [3, 17, 31, 257, true, true, false],
      [4, 9, 23, 300, false, true, true],
      [4, 9, 23, 300, false, false, true],
    ];
    for (const [batch, m, n, k, transA, transB, shared] of cases) {
      const name = `matmul batch ${batch} ${m}x${n}x${k} transA=${transA} transB=${transB} shared=${shared}`;
      const a = rand(batch * m * k, 10 + m);
      const b = rand((shared ? 1 : batch) * k * n, 20 + n);
      const aShape = transA ? [k, m] : [m, k];
      const bShape = transB ? [n, k] : [k, n];
      const [g, c] = twin(
        [a, b],
        [batch > 1 ? [batch, ...aShape] : aShape, shared || batch === 1 ? bShape : [batch, ...bShape]],
        (x, y) => matmul(x, y, { transA, transB }),
      );
      let worst = 0;
      let magnitude = 0;
      for (let i = 0; i < batch; i++) {
        const ref = matmulF64(
          a.subarray(i * m * k, (i + 1) * m * k),
          shared ? b : b.subarray(i * k * n, (i + 1) * k * n),
          m,
          n,
          k,
          transA,
          transB,
        );
        magnitude = Math.max(magnitude, ref.magnitude);
        for (let j = 0; j < m * n; j++) worst = Math.max(worst, Math.abs(g[i * m * n + j] - ref.c[j]));
      }
      expect(worst, `${name}: max |cuBLAS - float64| vs magnitude ${magnitude}`).toBeLessThanOrEqual(
        1e-5 * magnitude,
      );
      expectClose(g, c, { atol: 1e-5 * magnitude }, `${name} vs the CPU`);
    }
  });

  it('concat / split / narrow match the CPU', () => {
    const x = rand(4 * 6 * 5, 30);
    const y = rand(4 * 3 * 5, 31);
    const [gc, cc] = twin(
      [x, y],
      [
        [4, 6, 5],
        [4, 3, 5],
      ],
      (a, b) => concat([a, b], 1),
    );
    expect(gc).toEqual(cc);
    const [gc0, cc0] = twin(
      [x, x],
      [
        [4, 6, 5],
        [4, 6, 5],
      ],
      (a, b) => concat([a, b], 0),
    );
    expect(gc0).toEqual(cc0);
    const [gn, cn] = twin([x], [[4, 6, 5]], (a) => narrow(a, 2, 1, 3));
    expect(gn).toEqual(cn);
    const [gs, cs] = twin([x], [[4, 6, 5]], (a) => split(a, [2, 4], 1)[1]);
    expect(gs).toEqual(cs);
  });

  it('autograd across devices: the gradient of to() goes back to the source device', () => {
    const xs = rand(6 * 8, 40);
    const ws = rand(5 * 8, 41);
    const bs = rand(5, 42);
    const run = (device: 'cpu' | 'cuda') =>
      tidy(() => {
        // x lives on the CPU; the layer runs on `device`.
        const x = Tensor.from(xs, [6, 8], { requiresGrad: true });
        const w = Tensor.from(ws, [5, 8], { requiresGrad: true, device });
        const b = Tensor.from(bs, [5], { requiresGrad: true, device });
        const y = linear(x.to(device), w, b);
        const loss = sumAll(mul(y, y));
        loss.backward();
        expect(x.grad?.device).toBe('cpu');
        expect(w.grad?.device).toBe(device);
        const out = { loss: loss.item(), x: values(x.grad!), w: values(w.grad!), b: values(b.grad!) };
        for (const t of [x, w, b]) t.zeroGrad();
        return out;
      });
    const onCpu = run('cpu');
    const onGpu = run('cuda');
    expectClose([onGpu.loss], [onCpu.loss], { rtol: 1e-5 }, 'loss');
    for (const key of ['x', 'w', 'b'] as const) {
      expectClose(onGpu[key], onCpu[key], { rtol: 1e-5, atol: 1e-5 * maxAbs(onCpu[key]) }, `grad ${key}`);
    }
    // A CUDA leaf moved to the CPU: the gradient arrives on cuda.
    tidy(() => {
      const g = Tensor.from([1, 2, 3], [3], { requiresGrad: true, device: 'cuda' });
      sumAll(scale(g.to('cpu'), 2)).backward();
      expect(g.grad?.device).toBe('cuda');
      expect(Array.from(values(g.grad!))).toEqual([2, 2, 2]);
      g.zeroGrad();
    });
  });

  it('AdamW, gradNorm and clipGradNorm on CUDA match the CPU', () => {
    const init = rand(1237, 50);
    const grads = [rand(1237, 51), rand(1237, 52, 0.01), rand(1237, 53, 3)];
    const run = (device: 'cpu' | 'cuda') => {
      const p = Tensor.from(init, [1237], { requiresGrad: true, device });
      const opt = new AdamW([p], { lr: 1e-3, weightDecay: 0.01 });
      const norms: number[] = [];
      for (const g of grads) {
        p.grad?.dispose();
        p.grad = Tensor.from(g, [1237], { device });
        norms.push(gradNorm([p]).totalNorm);
        clipGradNorm([p], 20);
        opt.update();
      }
      const out = { p: values(p), m: values(opt.state().moments[0].m), norms };
      p.grad?.dispose();
      p.dispose();
      opt.dispose();
      return out;
    };
    const onCpu = run('cpu');
    const onGpu = run('cuda');
    expectClose(onGpu.p, onCpu.p, { rtol: 1e-6, atol: 1e-9 }, 'param');
    expectClose(onGpu.m, onCpu.m, { rtol: 1e-6, atol: 1e-6 * maxAbs(onCpu.m) }, 'm');
    expectClose(onGpu.norms, onCpu.norms, { rtol: 1e-12 }, 'grad norms');
  });

  it('the caching allocator: stats, peak, reuse without cudaMalloc, emptyCache', () => {
    emptyCache();
    const base = memoryStats('cuda');
    expect(base.cachedBytes).toBe(0);
    resetPeakMemory('cuda');
    const a = Tensor.zeros([1000, 1000], { device: 'cuda' }); // 4 MB: a 2 MiB-rounded block
    const b = Tensor.zeros([100], { device: 'cuda' }); // 400 B: a small block
    const withBoth = memoryStats('cuda');
    expect(withBoth.currentBytes - base.currentBytes).toBe(4_000_400);
    expect(withBoth.allocations - base.allocations).toBe(2);
    expect(withBoth.peakBytes).toBe(withBoth.currentBytes);
    expect(withBoth.reservedBytes - base.reservedBytes).toBeGreaterThanOrEqual(4_000_400);
    a.dispose();
    b.dispose();
    const freed = memoryStats('cuda');
    expect(freed.currentBytes).toBe(base.currentBytes);
    expect(freed.peakBytes).toBe(withBoth.peakBytes); // the peak stays until reset
    expect(freed.cachedBytes).toBe(withBoth.reservedBytes - base.reservedBytes); // kept, not freed
    expect(freed.reservedBytes).toBe(withBoth.reservedBytes);
    // The same sizes again come from the cache: nothing new is reserved.
    const a2 = Tensor.empty([1000, 1000], { device: 'cuda' });
    const b2 = Tensor.empty([90], { device: 'cuda' });
    const reused = memoryStats('cuda');
    expect(reused.reservedBytes).toBe(withBoth.reservedBytes);
    expect(reused.cachedBytes).toBe(0);
    a2.dispose();
    b2.dispose();
    resetPeakMemory('cuda');
    expect(memoryStats('cuda').peakBytes).toBe(base.currentBytes);
    emptyCache();
    const empty = memoryStats('cuda');
    expect(empty.cachedBytes).toBe(0);
    expect(empty.reservedBytes).toBe(base.reservedBytes);
  });

  it('out of memory is a clear error, and the device keeps working after it', () => {
    const before = memoryStats('cuda');
    // 2^42 bytes (4 TiB) is more than any GPU has: cudaMalloc fails even after the cache is released.
    expect(() => Tensor.empty([2 ** 40], { device: 'cuda' })).toThrow(
      /CUDA out of memory allocating 4398046511104 bytes/,
    );
    const after = memoryStats('cuda');
    expect(after.currentBytes).toBe(before.currentBytes);
    expect(after.allocations).toBe(before.allocations);
    tidy(() =>
      expect(
        values(
          add(Tensor.from([1, 2], [2], { device: 'cuda' }), Tensor.from([3, 4], [2], { device: 'cuda' })),
        ),
      ).toEqual(Float32Array.of(4, 6)),
    );
  });

  it('mixed devices and CPU-only kernels are clear errors', () => {
    tidy(() => {
      const c = Tensor.from([1, 2], [2]);
      const g = Tensor.from([1, 2], [2], { device: 'cuda' });
      expect(() => add(c, g)).toThrow(/add: a is on cpu but b is on cuda/);
      expect(() => matmul(g.reshape([1, 2]), c.reshape([2, 1]))).toThrow(
        /matmul: a is on cuda but b is on cpu/,
      );
      // The native check, for callers that skip the TS one.
      const out = Tensor.empty([2], { device: 'cuda' });
      expect(() => ops.binary({ op: 'add', a: g, b: c, out })).toThrow(
        /ops\.binary: a is on cuda but b is on cpu/,
      );
      expect(() => ops.axpy({ x: new Float32Array(2), y: g })).toThrow(
        /ops\.axpy: x is on cpu but y is on cuda/,
      );
      // A kernel with no CUDA twin (fillNormal initialises on the CPU) refuses device memory
      // instead of reading it on the host, naming the op, the argument and the device.
      expect(() => ops.fillNormal({ out, mean: 0, std: 1, seed: 1 })).toThrow(
        /ops\.fillNormal: out is on cuda, but this op has no CUDA kernel/,
      );
    });
  });
});
