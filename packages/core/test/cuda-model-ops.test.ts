// The model ops on CUDA against their CPU twins, through the core ops on tensors moved with
// .to('cuda') (the leaves stay on the CPU, so their gradients come back through to()'s backward):
// RMSNorm, LayerNorm, SwiGLU / QuickGELU / GELU, the embedding and the masked row scatter, forward
// and backward, and the errors a bad id or mask gives on the device. Skipped (one line saying why)
// where there is no CUDA build or no GPU; failing instead under OTHINK_REQUIRE_GPU=1.
//
// Tolerances, and why (u = 2^-24, float32's unit roundoff). A float32 sum whose every term goes
// through at most k roundings is off by at most k u sum |terms|; each bound below is that, with k
// counted on the GPU's reduction tree (the CPU accumulates in float64 and rounds once), and sum
// |terms| computed in float64 from the inputs, element by element:
// - embedding forward / backward, masked scatter forward / backward: copies, and (embedding
//   backward) float32 sums of each id's gradient rows from 0 in increasing position on both sides
//   (the GPU's sort is stable, no atomics): bitwise equal.
// - RMSNorm / LayerNorm: the GPU sums a row over 256 threads (cuda/norm.cu): ceil(H / 256) serial
//   adds, 5 warp levels, 3 levels over the 8 warps: rowDepth = ceil(H / 256) + 8 roundings. Its
//   rstd is then off by (rowDepth + 1) / 2 + 5 u relatively (sqrt halves the sum's error; scale,
//   eps, sqrt, division and the CPU's own rounding add the rest; LayerNorm + 1 for the centred
//   squares); its mean by (rowDepth + 3) u mean |x|. y: those, times |x_hat w| (and s |w| for the
//   mean), plus 8 u of |x_hat w| + |b| for the last few roundings on both sides. dx: rstd enters
//   cubed in the x_hat * mean(g w x_hat) term (3x its relative error), the row sums add
//   (rowDepth + 3 or 4) u of their sum |terms| / H, the mean's error s^2 dmean (C + |x_hat| G).
//   dw / db: column sums over rows in chunks of >= 256 rows, 8 row lanes each, then the lanes, then
//   the chunks in order: colDepth = ceil(rowsPerChunk / 8) + 8 + chunks, plus x_hat's error.
// - activations: CUDA's expf and erff are within 2 ulp; the CPU's polynomial exp is within 2.5e-7
//   on its reduced range, but its range reduction (x log2(e) in float32) adds |x| u, and its erf is
//   float64. A sigmoid is then within (6 + 2 |x|) u on either side, and each formula has at most 8
//   further roundings: the bound is 32 u times the formula's sum |terms|, times (1 + |x|) for each
//   way a sigmoid's error enters (squared in the gradients, where it enters through s and 1 - s:
//   1 + a (1 - s) in SwiGLU's dgate, s + 1.702 x s (1 - s) in QuickGELU's, factors that cancel).
//   GELU: |x| for 1 + erf(x / sqrt 2) far left, and pdf's argument x^2 / 2 rounded (relative
//   u x^2 / 2 of pdf). An emulation of the GPU's float32 arithmetic against the CPU kernels stays
//   within a seventh of these bounds for the activations and a third for the norms.
import * as native from '@othink/native';
import { ops } from '@othink/native';
import { describeGpu, randomNormal, seededRandom } from '@othink/testing';
import { afterAll, expect, it } from 'vitest';
import {
  embedding,
  emptyCache,
  gelu,
  layerNorm,
  maskedScatterRows,
  quickGelu,
  rmsNorm,
  swiglu,
  Tensor,
  tidy,
} from '../src/index.js';

const U = 2 ** -24;
// Qwen2-VL's norm epsilon (spec §3.2, §2.5).
const EPS = 1e-6;
// Below the smallest normal float32: a difference there is subnormal rounding, not an error.
const TINY = 2 ** -126;

function rand(n: number, seed: number, std = 1, offset = 0): Float32Array {
  const x = randomNormal(n, seededRandom(seed), std);
  if (offset !== 0) for (let i = 0; i < n; i++) x[i] += offset;
  return x;
}

function ints(n: number, seed: number, max: number): Int32Array {
  const r = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * max));
}

interface Input {
  data: Float32Array | Int32Array;
  shape: number[];
  grad?: boolean;
}

interface Run {
  y: Float32Array;
  /** The leaves' gradients (null where an input does not require grad). */
  grads: (Float32Array | null)[];
}

/**
 * Runs `op` on CPU leaves and on their `.to('cuda')` copies, then (when an input requires grad)
 * backward with the output gradient `g`, given on the output's device.
 */
function twin(inputs: Input[], op: (...ts: Tensor[]) => Tensor, g?: Float32Array): { cpu: Run; gpu: Run } {
  const run = (device: 'cpu' | 'cuda'): Run =>
    tidy(() => {
      const leaves = inputs.map((i) => Tensor.from(i.data, i.shape, { requiresGrad: i.grad ?? false }));
      const args = device === 'cpu' ? leaves : leaves.map((t) => t.to('cuda'));
      const out = op(...args);
      expect(out.device).toBe(device);
      if (g) {
        const grad = Tensor.from(g, out.shape);
        out.backward(device === 'cpu' ? grad : grad.to('cuda'));
      }
      return { y: out.toFloat32Array(), grads: leaves.map((l) => l.grad?.toFloat32Array() ?? null) };
    });
  return { cpu: run('cpu'), gpu: run('cuda') };
}

/** Throws unless |actual - expected| <= bound(i) for every i (NaN fails), naming the worst element. */
function expectWithin(
  actual: Float32Array | null,
  expected: Float32Array | null,
  bound: (i: number) => number,
  name: string,
): void {
  if (!actual || !expected) throw new Error(`${name}: missing (${actual ? 'cpu' : 'gpu'} result is null)`);
  expect(actual.length, name).toBe(expected.length);
  let failures = 0;
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    const b = bound(i) + TINY;
    const ratio = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff / b;
    if (ratio > 1) failures++;
    if (ratio > worstRatio || worst < 0) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (failures > 0) {
    throw new Error(
      `${name}: ${failures} of ${actual.length} elements outside their bound; worst at [${worst}]: ` +
        `${actual[worst]} vs ${expected[worst]} (|diff| / bound = ${worstRatio.toExponential(3)})`,
    );
  }
}

/** Throws unless the two arrays hold the same float32 bits, naming the first difference. */
function expectBitwise(actual: Float32Array | null, expected: Float32Array | null, name: string): void {
  if (!actual || !expected) throw new Error(`${name}: missing (${actual ? 'cpu' : 'gpu'} result is null)`);
  expect(actual.length, name).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) throw new Error(`${name}: first difference at [${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

// ---- RMSNorm / LayerNorm ----------------------------------------------------------------------

/** Roundings along one path of the GPU's block sum of a row (256 threads, 8 warps). */
const rowDepth = (hidden: number) => Math.ceil(hidden / 256) + 8;

/** Roundings along one path of the GPU's column sums (cuda/norm.cu's chunks and row lanes). */
function colDepth(rows: number): number {
  const perChunk = Math.max(256, Math.ceil(rows / 1024));
  return Math.ceil(perChunk / 8) + 8 + Math.ceil(rows / perChunk);
}

/** Per-row statistics in float64 for the bounds: s = rstd, mu (0 for RMSNorm) and mean |x|. */
function rowStats(x: Float32Array, rows: number, hidden: number, centred: boolean) {
  const s = new Float64Array(rows);
  const mu = new Float64Array(rows);
  const absMean = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    let abs = 0;
    for (let j = 0; j < hidden; j++) {
      sum += x[r * hidden + j];
      abs += Math.abs(x[r * hidden + j]);
    }
    const m = centred ? sum / hidden : 0;
    let sq = 0;
    for (let j = 0; j < hidden; j++) sq += (x[r * hidden + j] - m) ** 2;
    s[r] = 1 / Math.sqrt(sq / hidden + EPS);
    mu[r] = m;
    absMean[r] = abs / hidden;
  }
  return { s, mu, absMean };
}

/**
 * The bounds of the norms' outputs and gradients (see the header), element by element, from the
 * inputs: x [rows, hidden], w and b [hidden], g the output gradient.
 */
function normBounds(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  g: Float32Array,
  rows: number,
  hidden: number,
) {
  const layer = b !== null;
  const { s, mu, absMean } = rowStats(x, rows, hidden, layer);
  const depth = rowDepth(hidden);
  const cols = colDepth(rows);
  // rstd's relative error (in u) and the mean's absolute error (in u, times mean |x|).
  const rs = (depth + (layer ? 2 : 1)) / 2 + 5;
  const meanK = depth + 3;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(hidden);
  const db = new Float64Array(hidden);
  for (let r = 0; r < rows; r++) {
    const dm = layer ? meanK * U * absMean[r] : 0;
    let sumGw = 0;
    let sumGwx = 0;
    for (let j = 0; j < hidden; j++) {
      const i = r * hidden + j;
      const xh = (x[i] - mu[r]) * s[r];
      sumGw += Math.abs(g[i] * w[j]);
      sumGwx += Math.abs(g[i] * w[j] * xh);
    }
    const G = sumGw / hidden;
    const C = sumGwx / hidden;
    for (let j = 0; j < hidden; j++) {
      const i = r * hidden + j;
      const xh = Math.abs((x[i] - mu[r]) * s[r]);
      const gw = Math.abs(g[i] * w[j]);
      y[i] = U * (rs + 8) * (xh * Math.abs(w[j]) + (b ? Math.abs(b[j]) : 0)) + s[r] * Math.abs(w[j]) * dm;
      dx[i] = layer
        ? U * s[r] * ((3 * rs + 8) * (gw + G + xh * C) + (depth + 1) * G + xh * (depth + 4) * C) +
          s[r] * s[r] * dm * (C + xh * G)
        : U * s[r] * ((3 * rs + 8) * (gw + xh * C) + xh * (depth + 3) * C);
      dw[j] += U * Math.abs(g[i]) * ((cols + rs + 6) * xh) + Math.abs(g[i]) * s[r] * dm;
      db[j] += U * (cols + 2) * Math.abs(g[i]);
    }
  }
  return { y, dx, dw, db };
}

describeGpu(native, 'norms on CUDA against the CPU', () => {
  afterAll(() => emptyCache());

  // Qwen2-VL's LLM width (1536, several elements per thread); a narrow row (most threads idle, a
  // partial 32-column tile) over two row chunks; and 262200 rows, where a chunk holds more than
  // 256 rows and there are 1021 chunks.
  const shapes = [
    [2, 150, 1536],
    [300, 37],
    [262_200, 3],
  ];

  it('rmsNorm forward and backward (x and weight gradients, then each alone)', () => {
    for (const shape of shapes) {
      const hidden = shape.at(-1)!;
      const n = shape.reduce((a, b) => a * b, 1);
      const rows = n / hidden;
      const x = rand(n, 1);
      const w = rand(hidden, 2, 0.1, 1);
      const g = rand(n, 3);
      const bound = normBounds(x, w, null, g, rows, hidden);
      for (const [gx, gw] of [
        [true, true],
        [true, false],
        [false, true],
      ]) {
        const name = `rmsNorm ${shape} (grad x ${gx}, w ${gw})`;
        const { cpu, gpu } = twin(
          [
            { data: x, shape, grad: gx },
            { data: w, shape: [hidden], grad: gw },
          ],
          (t, wt) => rmsNorm(t, wt, EPS),
          g,
        );
        expectWithin(gpu.y, cpu.y, (i) => bound.y[i], `${name} y`);
        if (gx) expectWithin(gpu.grads[0], cpu.grads[0], (i) => bound.dx[i], `${name} dx`);
        else expect(gpu.grads[0]).toBeNull();
        if (gw) expectWithin(gpu.grads[1], cpu.grads[1], (j) => bound.dw[j], `${name} dw`);
        else expect(gpu.grads[1]).toBeNull();
      }
    }
  });

  it('layerNorm forward and backward (rows far from zero mean; every subset of the gradients)', () => {
    // The vision tower's width (1280) and the narrow / many-row shapes; x has mean 3 so that the
    // centring matters.
    for (const shape of [[3, 97, 1280], ...shapes.slice(1)]) {
      const hidden = shape.at(-1)!;
      const n = shape.reduce((a, b) => a * b, 1);
      const rows = n / hidden;
      const x = rand(n, 4, 1, 3);
      const w = rand(hidden, 5, 0.1, 1);
      const b = rand(hidden, 6, 0.1);
      const g = rand(n, 7);
      const bound = normBounds(x, w, b, g, rows, hidden);
      for (const [gx, gw, gb] of [
        [true, true, true],
        [true, false, false],
        [false, true, false],
        [false, false, true],
      ]) {
        const name = `layerNorm ${shape} (grad x ${gx}, w ${gw}, b ${gb})`;
        const { cpu, gpu } = twin(
          [
            { data: x, shape, grad: gx },
            { data: w, shape: [hidden], grad: gw },
            { data: b, shape: [hidden], grad: gb },
          ],
          (t, wt, bt) => layerNorm(t, wt, bt, EPS),
          g,
        );
        expectWithin(gpu.y, cpu.y, (i) => bound.y[i], `${name} y`);
        for (const [k, want, bnd, what] of [
          [0, gx, bound.dx, 'dx'],
          [1, gw, bound.dw, 'dw'],
          [2, gb, bound.db, 'db'],
        ] as const) {
          if (want) expectWithin(gpu.grads[k], cpu.grads[k], (i) => bnd[i], `${name} ${what}`);
          else expect(gpu.grads[k]).toBeNull();
        }
      }
    }
  });
});

// ---- activations ------------------------------------------------------------------------------

const ACT_K = 32;
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const INV_SQRT_2PI = 0.3989422804014327;

/** Random inputs of spread 4 plus the awkward ones: zeros, tiny, far out, and -1.2785 where 1 + a (1 - s) = 0. */
function activationInput(n: number, seed: number): Float32Array {
  const specials = [0, -0, 1e-3, -1e-3, 30, -30, 12, -12, -1.2785, 1.2785];
  const x = new Float32Array(n + specials.length);
  x.set(rand(n, seed, 4));
  x.set(specials, n);
  return x;
}

describeGpu(native, 'activations on CUDA against the CPU', () => {
  afterAll(() => emptyCache());

  it('swiglu forward and backward (both gradients, then each alone)', () => {
    const n = 4099;
    const a = activationInput(n, 11);
    const up = activationInput(n, 12);
    const g = rand(a.length, 13);
    const shape = [a.length];
    for (const [wantGate, wantUp] of [
      [true, true],
      [true, false],
      [false, true],
    ]) {
      const name = `swiglu (grad gate ${wantGate}, up ${wantUp})`;
      const { cpu, gpu } = twin(
        [
          { data: a, shape, grad: wantGate },
          { data: up, shape, grad: wantUp },
        ],
        swiglu,
        g,
      );
      expectWithin(
        gpu.y,
        cpu.y,
        (i) => ACT_K * U * Math.abs(a[i] * sigmoid(a[i]) * up[i]) * (1 + Math.abs(a[i])),
        `${name} y`,
      );
      if (wantGate) {
        expectWithin(
          gpu.grads[0],
          cpu.grads[0],
          (i) => ACT_K * U * Math.abs(g[i] * up[i]) * sigmoid(a[i]) * (1 + Math.abs(a[i])) ** 2,
          `${name} dgate`,
        );
      } else {
        expect(gpu.grads[0]).toBeNull();
      }
      if (wantUp) {
        expectWithin(
          gpu.grads[1],
          cpu.grads[1],
          (i) => ACT_K * U * Math.abs(g[i] * a[i] * sigmoid(a[i])) * (1 + Math.abs(a[i])),
          `${name} dup`,
        );
      } else {
        expect(gpu.grads[1]).toBeNull();
      }
    }
  });

  it('swiglu over more than 65536 blocks of 256 (the grid-stride loop)', () => {
    const n = 65536 * 256 + 1001;
    const a = rand(n, 14, 4);
    const up = rand(n, 15);
    const { cpu, gpu } = twin(
      [
        { data: a, shape: [n] },
        { data: up, shape: [n] },
      ],
      swiglu,
    );
    expectWithin(
      gpu.y,
      cpu.y,
      (i) => ACT_K * U * Math.abs(a[i] * sigmoid(a[i]) * up[i]) * (1 + Math.abs(a[i])),
      'swiglu y (16.8M)',
    );
  });

  it('quickGelu and gelu forward and backward', () => {
    const x = activationInput(4099, 16);
    const g = rand(x.length, 17);
    const shape = [x.length];
    const q = twin([{ data: x, shape, grad: true }], quickGelu, g);
    expectWithin(
      q.gpu.y,
      q.cpu.y,
      (i) => ACT_K * U * Math.abs(x[i] * sigmoid(1.702 * x[i])) * (1 + 1.702 * Math.abs(x[i])),
      'quickGelu y',
    );
    expectWithin(
      q.gpu.grads[0],
      q.cpu.grads[0],
      (i) => ACT_K * U * Math.abs(g[i]) * sigmoid(1.702 * x[i]) * (1 + 1.702 * Math.abs(x[i])) ** 2,
      'quickGelu dx',
    );
    const e = twin([{ data: x, shape, grad: true }], gelu, g);
    expectWithin(e.gpu.y, e.cpu.y, (i) => ACT_K * U * Math.abs(x[i]), 'gelu y');
    expectWithin(
      e.gpu.grads[0],
      e.cpu.grads[0],
      (i) => {
        const v = x[i];
        const pdf = INV_SQRT_2PI * Math.exp(-0.5 * v * v);
        return ACT_K * U * Math.abs(g[i]) * (1 + Math.abs(v) * pdf * (1 + v * v));
      },
      'gelu dx',
    );
  });

  it('an op without a CUDA kernel names itself, the argument and the device', () => {
    tidy(() => {
      const out = Tensor.empty([4], { device: 'cuda' });
      expect(() => ops.fillNormal({ out, seed: 1 })).toThrow(
        'ops.fillNormal: out is on cuda, but this op has no CUDA kernel',
      );
    });
  });
});

// ---- embedding --------------------------------------------------------------------------------

describeGpu(native, 'embedding on CUDA against the CPU', () => {
  afterAll(() => emptyCache());

  const idsTensor = (v: ArrayLike<number>) => Tensor.from(Int32Array.from(v), [v.length], { dtype: 'int32' });

  it("Qwen2-VL's vocabulary (151936 x 64): gather and scatter-add, repeated ids, first and last rows", () => {
    const [vocab, hidden] = [151_936, 64];
    const n = 5000;
    // Half the ids from 40 hot rows (every one repeated ~60 times), half anywhere, and the first
    // and last rows of the table.
    const hot = ints(40, 21, vocab);
    const pick = ints(n, 22, vocab);
    const which = ints(n, 23, 2);
    const ids = Int32Array.from({ length: n }, (_, i) => (which[i] ? hot[pick[i] % 40] : pick[i]));
    ids[0] = 0;
    ids[1] = vocab - 1;
    ids[n - 1] = vocab - 1;
    const table = rand(vocab * hidden, 24);
    const g = rand(n * hidden, 25);
    const { cpu, gpu } = twin(
      [
        { data: ids, shape: [50, 100] },
        { data: table, shape: [vocab, hidden], grad: true },
      ],
      embedding,
      g,
    );
    expectBitwise(gpu.y, cpu.y, 'embedding y');
    expectBitwise(gpu.grads[1], cpu.grads[1], 'embedding dtable');
  });

  it('one id repeated 3000 times among others (a long run of the sorted ids), ids of shape [2, 3]', () => {
    const [vocab, hidden] = [1000, 200];
    const ids = ints(6000, 26, vocab);
    for (let i = 0; i < 6000; i += 2) ids[i] = 7;
    const table = rand(vocab * hidden, 27);
    const g = rand(ids.length * hidden, 28);
    const { cpu, gpu } = twin(
      [
        { data: ids, shape: [ids.length] },
        { data: table, shape: [vocab, hidden], grad: true },
      ],
      embedding,
      g,
    );
    expectBitwise(gpu.y, cpu.y, 'embedding y (long run)');
    expectBitwise(gpu.grads[1], cpu.grads[1], 'embedding dtable (long run)');
    const small = twin(
      [
        { data: Int32Array.of(3, 0, 9, 3, 3, 7), shape: [2, 3] },
        { data: table.subarray(0, 10 * hidden), shape: [10, hidden], grad: true },
      ],
      (i, t) => {
        const y = embedding(i, t);
        expect(y.shape).toEqual([2, 3, hidden]);
        return y;
      },
      g.subarray(0, 6 * hidden),
    );
    expectBitwise(small.gpu.y, small.cpu.y, 'embedding y [2, 3]');
    expectBitwise(small.gpu.grads[1], small.cpu.grads[1], 'embedding dtable [2, 3]');
  });

  it('ids out of range on the device: the first bad position and its value, then the GPU still works', () => {
    tidy(() => {
      const table = Tensor.from(rand(40, 29), [10, 4]).to('cuda');
      expect(() => embedding(idsTensor([1, 2, 3, 10]).to('cuda'), table)).toThrow(
        'ops.embedding: ids[3] = 10 is out of range for a table of 10 rows (ids must be in [0, 10))',
      );
      expect(() => embedding(idsTensor([0, -1]).to('cuda'), table)).toThrow(
        'ops.embedding: ids[1] = -1 is out of range for a table of 10 rows',
      );
      // Many ids over many blocks, two bad ones far apart: the first by position is reported.
      const many = ints(200_000, 30, 10);
      many[150_001] = 10;
      many[199_999] = -5;
      expect(() => embedding(Tensor.from(many, [many.length]).to('cuda'), table)).toThrow(
        'ops.embedding: ids[150001] = 10 is out of range for a table of 10 rows',
      );
      // The backward checks its ids the same way.
      expect(() =>
        ops.embeddingBackward({
          grad: Tensor.zeros([2, 4], { device: 'cuda' }),
          ids: idsTensor([0, 12]).to('cuda'),
          gradTable: Tensor.empty([10, 4], { device: 'cuda' }),
          vocab: 10,
          hidden: 4,
        }),
      ).toThrow('ops.embeddingBackward: ids[1] = 12 is out of range for a table of 10 rows');
      // Ids and table on different devices never reach a kernel.
      expect(() =>
        ops.embedding({
          ids: idsTensor([0, 1]).to('cuda'),
          table: Tensor.zeros([10, 4]),
          out: Tensor.empty([2, 4], { device: 'cuda' }),
          vocab: 10,
          hidden: 4,
        }),
      ).toThrow('ops.embedding: ids is on cuda but table is on cpu');
      // Nothing was left broken on the device: a good lookup works and is exact.
      const good = embedding(idsTensor([9, 0]).to('cuda'), table).toFloat32Array();
      const rows = table.toFloat32Array();
      expect(Array.from(good)).toEqual([...rows.subarray(36, 40), ...rows.subarray(0, 4)]);
    });
  });
});

// ---- masked scatter ---------------------------------------------------------------------------

describeGpu(native, 'maskedScatterRows on CUDA against the CPU', () => {
  afterAll(() => emptyCache());

  const maskTensor = (v: ArrayLike<number>) =>
    Tensor.from(Int32Array.from(v), [v.length], { dtype: 'int32' });

  function check(
    mask: Int32Array,
    hidden: number,
    seed: number,
    wantBase: boolean,
    wantSource: boolean,
  ): void {
    const rows = mask.length;
    const ones = mask.reduce((a, m) => a + m, 0);
    const base = rand(rows * hidden, seed);
    const source = rand(ones * hidden, seed + 1);
    const g = rand(rows * hidden, seed + 2);
    const name = `maskedScatterRows [${rows}, ${hidden}], ${ones} set (grad base ${wantBase}, source ${wantSource})`;
    const { cpu, gpu } = twin(
      [
        { data: base, shape: [rows, hidden], grad: wantBase },
        { data: mask, shape: [rows] },
        { data: source, shape: [ones, hidden], grad: wantSource },
      ],
      maskedScatterRows,
      g,
    );
    expectBitwise(gpu.y, cpu.y, `${name} y`);
    if (wantBase) expectBitwise(gpu.grads[0], cpu.grads[0], `${name} dbase`);
    else expect(gpu.grads[0]).toBeNull();
    if (wantSource) expectBitwise(gpu.grads[2], cpu.grads[2], `${name} dsource`);
    else expect(gpu.grads[2]).toBeNull();
  }

  it('image-pad rows replaced in order; gradients split between base and source', () => {
    // Two sequences' token ids flattened, 151655 = <|image_pad|> (spec §4).
    const ids = [151644, 151652, 151655, 151655, 151655, 151653, 9707, 151652, 151655, 151655, 151653];
    const mask = Int32Array.from(ids, (id) => (id === 151655 ? 1 : 0));
    check(mask, 7, 31, true, true);
    check(mask, 7, 34, true, false);
    check(mask, 7, 37, false, true);
    // Qwen2-VL's width over 5000 rows, a third of them set; and a mask with no set row.
    check(
      ints(5000, 40, 3).map((v) => (v === 0 ? 1 : 0)),
      1536,
      41,
      true,
      true,
    );
    check(new Int32Array(50), 9, 44, true, false);
  });

  it('a bad mask on the device: the first bad position and value, or the count against source', () => {
    tidy(() => {
      const base = Tensor.zeros([3, 4], { device: 'cuda' });
      const one = Tensor.zeros([1, 4], { device: 'cuda' });
      expect(() => maskedScatterRows(base, maskTensor([0, 2, 1]).to('cuda'), one)).toThrow(
        'ops.maskedScatterRows: mask[1] = 2 is not 0 or 1',
      );
      expect(() => maskedScatterRows(base, maskTensor([1, 0, 1]).to('cuda'), one)).toThrow(
        'ops.maskedScatterRows: the mask selects 2 rows but source has 1 row; they must match',
      );
      // Many rows over many blocks, two bad values far apart: the first by position is reported.
      const rows = 100_000;
      const mask = new Int32Array(rows);
      mask[70_001] = -1;
      mask[99_000] = 3;
      expect(() =>
        maskedScatterRows(
          Tensor.zeros([rows, 1], { device: 'cuda' }),
          Tensor.from(mask, [rows]).to('cuda'),
          Tensor.zeros([0, 1], { device: 'cuda' }),
        ),
      ).toThrow('ops.maskedScatterRows: mask[70001] = -1 is not 0 or 1');
      expect(() =>
        ops.maskedScatterRowsBackward({
          grad: Tensor.zeros([3, 4], { device: 'cuda' }),
          mask: maskTensor([0, 0, 1]).to('cuda'),
          gradSource: Tensor.empty([2, 4], { device: 'cuda' }),
          rows: 3,
          hidden: 4,
        }),
      ).toThrow('ops.maskedScatterRowsBackward: the mask selects 1 row but gradSource has 2 rows');
      // The device is still fine afterwards.
      const out = maskedScatterRows(
        base,
        maskTensor([0, 1, 0]).to('cuda'),
        Tensor.from(rand(4, 45), [1, 4]).to('cuda'),
      );
      expect(out.device).toBe('cuda');
      expect(Array.from(out.toFloat32Array().subarray(4, 8))).toEqual(Array.from(rand(4, 45)));
    });
  });
});
