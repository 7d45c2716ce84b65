import { cuda } from '@othink/native';
import { expectClose, Fixture, fixtureCases, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { mropeCosSin, ropeInvFreq, rotary, scale, Tensor, tidy, visionRotaryCosSin } from '../src/index.js';
import { gradcheck } from './gradcheck.js';

/** HF rotate_half applied in float64: out = x cos + [-x2, x1] sin, per (row, head). */
function reference(
  x: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  rows: number,
  heads: number,
  dim: number,
) {
  const half = dim / 2;
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < dim; i++) {
        const at = (r * heads + h) * dim;
        const rot = i < half ? -x[at + i + half] : x[at + i - half];
        out[at + i] = x[at + i] * cos[r * dim + i] + rot * sin[r * dim + i];
      }
  return out;
}

const i32 = (values: ArrayLike<number>, shape: number[]) =>
  Tensor.from(Int32Array.from(values), shape, { dtype: 'int32' });

describe('rotary: values and gradients', () => {
  it('matches rotate_half in float64 for [B, S, H, D] and vision [N, H, D] layouts', () => {
    const rand = seededRandom(1);
    const cases: [number[], number, number][] = [
      [[2, 3], 4, 6],
      [[5], 2, 8],
      [[1, 7], 3, 128],
    ];
    for (const [lead, heads, dim] of cases) {
      const rows = lead.reduce((a, b) => a * b, 1);
      const x = randomNormal(rows * heads * dim, rand);
      const cos = randomNormal(rows * dim, rand);
      const sin = randomNormal(rows * dim, rand);
      const got = tidy(() =>
        rotary(
          Tensor.from(x, [...lead, heads, dim]),
          Tensor.from(cos, [...lead, dim]),
          Tensor.from(sin, [...lead, dim]),
        ).toFloat32Array(),
      );
      // Two float32 products and a sum per element: a few ulps of values up to ~10.
      expectClose(
        got,
        reference(x, cos, sin, rows, heads, dim),
        { atol: 5e-6 },
        `rotary ${lead} ${heads} ${dim}`,
      );
    }
  });

  it('gradient to x is the exact transpose, for arbitrary tables', () => {
    // Random (not RoPE-shaped) tables: the backward must be the transpose, not merely "rotate by -sin".
    const rand = seededRandom(2);
    const c = randomNormal(2 * 3 * 6, rand);
    const s = randomNormal(2 * 3 * 6, rand);
    gradcheck(
      (x) => rotary(x, Tensor.from(c, [2, 3, 6]), Tensor.from(s, [2, 3, 6])),
      [{ shape: [2, 3, 5, 6] }],
    );
  });

  it('with RoPE tables the backward is the rotation by -sin', () => {
    const { cos, sin } = visionRotaryCosSin(i32([0, 0, 1, 2, 3, 5], [3, 2]), 8);
    const g = randomNormal(3 * 2 * 8, seededRandom(3));
    tidy(() => {
      const x = Tensor.zeros([3, 2, 8], { requiresGrad: true });
      rotary(x, cos, sin).backward(Tensor.from(g, [3, 2, 8]));
      const inverse = rotary(Tensor.from(g, [3, 2, 8]), cos, scale(sin, -1)).toFloat32Array();
      expect(Array.from(x.grad!.toFloat32Array())).toEqual(Array.from(inverse));
    });
    cos.dispose();
    sin.dispose();
  });

  it('bad input names the shapes', () => {
    const z = (shape: number[]) => Tensor.zeros(shape);
    expect(() => tidy(() => rotary(z([2, 3, 4, 6]), z([2, 4, 6]), z([2, 4, 6])))).toThrow(
      /cos \[2, 4, 6\] and sin \[2, 4, 6\] must be \[2, 3, 6\] for x \[2, 3, 4, 6\]/,
    );
    expect(() => tidy(() => rotary(z([2, 3, 4, 6]), z([2, 3, 6]), z([2, 3, 5])))).toThrow(/sin \[2, 3, 5\]/);
    expect(() => tidy(() => rotary(z([3, 2, 5]), z([3, 5]), z([3, 5])))).toThrow(
      /last dimension of x \[3, 2, 5\] must be even/,
    );
  });
});

// The CUDA twin: same float64 reference and tolerance. Runs only on a CUDA build with a GPU.
const gpu = cuda?.deviceInfo().available === true;
describe.skipIf(!gpu)('rotary on CUDA', () => {
  it('forward and backward match the CPU definition', () => {
    const rand = seededRandom(5);
    const [rows, heads, dim] = [6, 3, 80];
    const x = randomNormal(rows * heads * dim, rand);
    const cos = randomNormal(rows * dim, rand);
    const sin = randomNormal(rows * dim, rand);
    const g = randomNormal(rows * heads * dim, rand);
    tidy(() => {
      const t = (data: Float32Array, shape: number[], requiresGrad = false) =>
        Tensor.from(data, shape, { device: 'cuda', requiresGrad });
      const tx = t(x, [rows, heads, dim], true);
      const out = rotary(tx, t(cos, [rows, dim]), t(sin, [rows, dim]));
      expectClose(
        out.toFloat32Array(),
        reference(x, cos, sin, rows, heads, dim),
        { atol: 5e-6 },
        'cuda rotary',
      );
      out.backward(t(g, [rows, heads, dim]));
      // The transpose of the rotation on g: the CPU kernel's result (same two products per element).
      const cpu = Tensor.from(x, [rows, heads, dim], { requiresGrad: true });
      rotary(cpu, Tensor.from(cos, [rows, dim]), Tensor.from(sin, [rows, dim])).backward(
        Tensor.from(g, [rows, heads, dim]),
      );
      expectClose(
        tx.grad!.toFloat32Array(),
        cpu.grad!.toFloat32Array(),
        { atol: 5e-6 },
        'cuda rotary backward',
      );
    });
  });
});

describe('RoPE tables (spec §2.4, §3.5)', () => {
  it('inverse frequencies match the spec', () => {
    // LLM: f_j = 1e6^(-2j/128): f_0 = 1, f_1 = 0.8058422, f_63 = 1.2409e-6 (float32 values).
    const llm = ropeInvFreq(128, 1e6);
    expect(llm.length).toBe(64);
    expect(llm[0]).toBe(1);
    expect(llm[1]).toBeCloseTo(0.8058422, 7);
    expect(llm[63]).toBeCloseTo(1.2409e-6, 10);
    // Vision: dim = head_dim / 2 = 40, 20 frequencies 10000^(-j/20): 1, 0.630957, 0.398107, ..., 1.5849e-4.
    const vision = ropeInvFreq(40, 10000);
    expect(vision.length).toBe(20);
    expect(Array.from(vision.slice(0, 3)).map((f) => f.toFixed(6))).toEqual([
      '1.000000',
      '0.630957',
      '0.398107',
    ]);
    expect(vision[19]).toBeCloseTo(1.5849e-4, 8);
    // Every value is a float32, within float32 rounding of the float64 formula.
    for (let j = 0; j < 64; j++) expect(Math.abs(llm[j] / 1e6 ** (-j / 64) - 1)).toBeLessThan(3e-7);
  });

  it('M-RoPE: sections [16, 24, 24] pick t / h / w per frequency, the same in both halves', () => {
    const [B, S] = [2, 3];
    // Distinct components so that each table entry reveals which one it used.
    const t = [0, 1, 2, 3, 4, 5];
    const h = [10, 20, 30, 40, 50, 60];
    const w = [7, 9, 11, 13, 15, 17];
    const invFreq = ropeInvFreq(128, 1e6);
    const { cos, sin } = mropeCosSin(i32([...t, ...h, ...w], [3, B, S]), invFreq, [16, 24, 24]);
    expect(cos.shape).toEqual([B, S, 128]);
    const [c, s] = [cos.toFloat32Array(), sin.toFloat32Array()];
    for (let r = 0; r < B * S; r++) {
      for (let d = 0; d < 128; d++) {
        const j = d % 64;
        // dims 0-15 / 64-79 temporal, 16-39 / 80-103 height, 40-63 / 104-127 width.
        const pos = j < 16 ? t[r] : j < 40 ? h[r] : w[r];
        const angle = pos * invFreq[j];
        // Angles up to 60 rad are float32 products (as HF's): their rounding (<= 4e-6) bounds the error.
        expect(Math.abs(c[r * 128 + d] - Math.cos(angle))).toBeLessThan(5e-6);
        expect(Math.abs(s[r * 128 + d] - Math.sin(angle))).toBeLessThan(5e-6);
      }
    }
    cos.dispose();
    sin.dispose();
  });

  it('M-RoPE with equal components is ordinary 1-D RoPE', () => {
    const pos = [0, 1, 2, 5, 8];
    const invFreq = ropeInvFreq(16, 1e6);
    tidy(() => {
      const m = mropeCosSin(i32([...pos, ...pos, ...pos], [3, 1, 5]), invFreq, [2, 3, 3]);
      const plain = mropeCosSin(i32([...pos, ...pos, ...pos], [3, 1, 5]), invFreq, [8, 0, 0]);
      expect(Array.from(m.cos.toFloat32Array())).toEqual(Array.from(plain.cos.toFloat32Array()));
      expect(Array.from(m.sin.toFloat32Array())).toEqual(Array.from(plain.sin.toFloat32Array()));
      const c = m.cos.toFloat32Array();
      expect(c[3 * 16 + 1]).toBeCloseTo(Math.cos(5 * invFreq[1]), 6);
      // Sparse positions skip the per-position table: the same float32 angle, computed directly.
      const far = mropeCosSin(
        i32([3, 90001, 3, 90001, 3, 90001], [3, 1, 2]),
        invFreq,
        [2, 3, 3],
      ).sin.toFloat32Array();
      for (let j = 0; j < 8; j++) {
        expect(far[j]).toBe(Math.fround(Math.sin(Math.fround(3 * invFreq[j]))));
        expect(far[16 + j]).toBe(Math.fround(Math.sin(Math.fround(90001 * invFreq[j]))));
      }
    });
  });

  it('vision: rot_pos_ids of the fixture follow the spec window order; pair (i, i + D/2) turns by hpos f_i / wpos f_(i-D/4)', () => {
    // Every one-image case of the set (the public case-single is the spec's worked example, §2.4:
    // one 4 x 6 image, hpos 0 0 1 1 0 0 1 1 ..., wpos 0 1 0 1 2 3 2 3 ...).
    let checked = 0;
    for (const name of fixtureCases('qwen2vl-tiny', { with: ['vision.rot_pos_ids'] })) {
      const fixture = new Fixture(`qwen2vl-tiny/${name}.safetensors`);
      if (fixture.shape('image_grid_thw')[0] !== 1) continue;
      checkWindowOrder(fixture);
      checked++;
    }
    expect(checked, 'one-image cases').toBeGreaterThan(0);
  });

  function checkWindowOrder(fixture: Fixture) {
    const ids = fixture.i32('vision.rot_pos_ids');
    // The spec's window order: 2 x 2 merge windows row by row, the 4 patches of a window row by row.
    const [t, gh, gw] = fixture.i32('image_grid_thw');
    expect(t).toBe(1);
    const hpos: number[] = [];
    const wpos: number[] = [];
    for (let br = 0; br < gh / 2; br++)
      for (let bc = 0; bc < gw / 2; bc++)
        for (let ir = 0; ir < 2; ir++)
          for (let ic = 0; ic < 2; ic++) {
            hpos.push(2 * br + ir);
            wpos.push(2 * bc + ic);
          }
    const n = hpos.length;
    expect(Array.from(ids)).toEqual(hpos.flatMap((hp, k) => [hp, wpos[k]]));
    const D = 80; // the real vision head_dim: 20 frequencies, pairs (i, i + 40)
    const f = ropeInvFreq(40, 10000);
    tidy(() => {
      const { cos, sin } = visionRotaryCosSin(i32(ids, [n, 2]), D);
      // x = 1 in the first half, 0 in the second: each pair (1, 0) turns into (cos a, sin a) in
      // dims (i, i + 40), which reads the angle back.
      const x = new Float32Array(n * D);
      for (let r = 0; r < n; r++) for (let i = 0; i < 40; i++) x[r * D + i] = 1;
      const out = rotary(Tensor.from(x, [n, 1, D]), cos, sin).toFloat32Array();
      for (let r = 0; r < n; r++) {
        for (let i = 0; i < 40; i++) {
          const angle = i < 20 ? hpos[r] * f[i] : wpos[r] * f[i - 20];
          expect(Math.abs(out[r * D + i] - Math.cos(angle))).toBeLessThan(1e-6);
          expect(Math.abs(out[r * D + i + 40] - Math.sin(angle))).toBeLessThan(1e-6);
        }
      }
    });
  }

  it('bad table inputs', () => {
    const f = ropeInvFreq(16, 1e6);
    expect(() => tidy(() => mropeCosSin(i32([0, 0, 0], [3, 1, 1]), f, [2, 3, 2]))).toThrow(
      /mropeSection \[2, 3, 2\] must be 3 counts summing to the 8 frequencies/,
    );
    expect(() => tidy(() => mropeCosSin(i32([0, 0], [2, 1, 1]), f, [2, 3, 3]))).toThrow(
      /positionIds \[2, 1, 1\] must be \[3, B, S\]/,
    );
    expect(() => tidy(() => mropeCosSin(Tensor.zeros([3, 1, 1]), f, [2, 3, 3]))).toThrow(
      /dtype float32, expected int32/,
    );
    expect(() => tidy(() => visionRotaryCosSin(i32([0, 0, 0], [1, 3]), 16))).toThrow(
      /rotPosIds \[1, 3\] must be \[N, 2\]/,
    );
    expect(() => tidy(() => visionRotaryCosSin(i32([0, 0], [1, 2]), 18))).toThrow(/multiple of 4/);
    expect(() => ropeInvFreq(7, 1e4)).toThrow(/even/);
  });
});
