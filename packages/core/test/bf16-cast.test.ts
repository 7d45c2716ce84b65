// cast(t, dtype): float32 <-> bfloat16. Hand-made bit patterns pin round to nearest even (ties to
// the even neighbour), NaN kept NaN (quiet bit set, sign and top payload kept), infinities,
// overflow to inf, signed zeros and subnormals; every one of the 65536 bfloat16 patterns widens
// exactly and narrows back to itself. The CUDA twin must agree bit for bit (same formula).
import * as native from '@othink/native';
import { describeGpu } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { cast, type Device, Tensor, tidy } from '../src/index.js';

// [float32 bits, expected bfloat16 bits, why]
const narrowing: [number, number, string][] = [
  [0x3f808000, 0x3f80, 'tie, kept half even: stays'],
  [0x3f818000, 0x3f82, 'tie, kept half odd: rounds up to even'],
  [0x3f808001, 0x3f81, 'just above the tie: up'],
  [0x3f807fff, 0x3f80, 'just below the tie: down'],
  [0xbf818000, 0xbf82, 'negative tie to even (magnitude up)'],
  [0x3f800000, 0x3f80, '1 exactly'],
  [0x00000000, 0x0000, '+0'],
  [0x80000000, 0x8000, '-0'],
  [0x7f800000, 0x7f80, '+inf'],
  [0xff800000, 0xff80, '-inf'],
  [0x7f7fffff, 0x7f80, 'largest float32 rounds to inf'],
  [0x7f7f7fff, 0x7f7f, 'below the tie under the largest bf16: stays finite'],
  [0x7fc00000, 0x7fc0, 'quiet NaN'],
  [0x7f800001, 0x7fc0, 'signalling NaN with a low payload: NaN, not inf'],
  [0xffc12345, 0xffc1, 'negative NaN keeps sign and payload'],
  [0x00008000, 0x0000, 'subnormal tie to even zero'],
  [0x00018000, 0x0002, 'subnormal tie to even 2'],
  [0x00010001, 0x0001, 'subnormal below half: down'],
  [0x007fffff, 0x0080, 'largest subnormal rounds up to the smallest normal'],
  [0x80018000, 0x8002, 'negative subnormal tie'],
];

function floatsFromBits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

function checkNarrowing(device: Device): void {
  tidy(() => {
    const x = Tensor.from(floatsFromBits(narrowing.map((c) => c[0])), [narrowing.length], { device });
    const y = cast(x, 'bfloat16');
    expect(y.dtype).toBe('bfloat16');
    expect(y.device).toBe(device);
    const got = Array.from(y.to('cpu').toTypedArray() as Uint16Array);
    narrowing.forEach(([from, want, why], i) => {
      expect(got[i], `0x${from.toString(16)} (${why})`).toBe(want);
    });
  });
}

function checkAllPatterns(device: Device): void {
  tidy(() => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const h = Tensor.from(all, [256, 256], { dtype: 'bfloat16', device });
    const wide = cast(h, 'float32');
    expect(wide.dtype).toBe('float32');
    const bits = new Uint32Array((wide.to('cpu').toTypedArray() as Float32Array).buffer);
    for (let i = 0; i < 65536; i++) if (bits[i] !== (i << 16) >>> 0) expect(bits[i]).toBe((i << 16) >>> 0);
    const back = cast(wide, 'bfloat16').to('cpu').toTypedArray() as Uint16Array;
    const isNaNBits = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
    for (let i = 0; i < 65536; i++) {
      const want = isNaNBits(i) ? i | 0x40 : i; // a signalling NaN comes back quiet
      if (back[i] !== want) expect(back[i], `bf16 0x${i.toString(16)}`).toBe(want);
    }
  });
}

describe('cast (CPU)', () => {
  it('float32 -> bfloat16 rounds to nearest even; NaN, inf, zeros and subnormals', () =>
    checkNarrowing('cpu'));

  it('every bfloat16 pattern widens exactly and narrows back to itself', () => checkAllPatterns('cpu'));

  it('is differentiable: the gradient is cast back', () => {
    tidy(() => {
      const x = Tensor.from([1.00390625, -3, 0.1], [3], { requiresGrad: true });
      const y = cast(x, 'bfloat16');
      y.backward(Tensor.from(Uint16Array.from([0x3f80, 0xc040, 0x3e80]), [3], { dtype: 'bfloat16' }));
      expect(x.grad!.dtype).toBe('float32');
      expect(Array.from(x.grad!.toFloat32Array())).toEqual([1, -3, 0.25]);

      const h = Tensor.from(Uint16Array.from([0x3f80, 0x4000]), [2], {
        dtype: 'bfloat16',
        requiresGrad: true,
      });
      const w = cast(h, 'float32');
      // 1 + 2^-9 is a bf16 tie: the gradient rounds to even, 1.
      w.backward(Tensor.from([1 + 2 ** -9, 0.3], [2]));
      expect(h.grad!.dtype).toBe('bfloat16');
      expect(Array.from(h.grad!.toTypedArray())).toEqual([0x3f80, 0x3e9a]);
    });
  });

  it('returns the tensor itself for its own dtype, and rejects int32 and unknown dtypes', () => {
    tidy(() => {
      const x = Tensor.from([1, 2], [2]);
      expect(cast(x, 'float32')).toBe(x);
      expect(() => cast(Tensor.from(Int32Array.from([1]), [1]), 'bfloat16')).toThrow(
        /cast: t has dtype int32; cast converts float32 <-> bfloat16/,
      );
      expect(() => cast(x, 'float16' as never)).toThrow(/cast: dtype must be 'float32' or 'bfloat16'/);
      expect(() => native.ops.cast({ x, out: Tensor.empty([2]) })).toThrow(
        /ops.cast: x and out are both float32/,
      );
      expect(() => native.ops.cast({ x, out: Tensor.empty([3], { dtype: 'bfloat16' }) })).toThrow(
        /ops.cast: out has 3 elements; expected 2/,
      );
    });
  });
});

describeGpu(native, 'cast on CUDA', () => {
  it('rounds the hand-made patterns as the CPU does', () => checkNarrowing('cuda'));
  it('every bfloat16 pattern widens exactly and narrows back to itself', () => checkAllPatterns('cuda'));
});
