// readTensor(entry, { dtype: 'bfloat16' }): BF16 on disk comes in bit for bit (no float32 detour,
// so NaN payloads and subnormals survive untouched), also across the 16 MB staging chunks; F32
// and F16 round to nearest even, as the native cast does; the float32 default is unchanged.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as native from '@othink/native';
import { describeGpu, seededRandom } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { cast, type Device, Tensor, tidy } from '../src/index.js';
import { readSafetensorsHeader, readTensor } from '../src/io/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'othink-bf16-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One-tensor safetensors file holding `data` as `dtype`. */
function file(name: string, dtype: string, shape: number[], data: ArrayBufferView): string {
  const json = JSON.stringify({ t: { dtype, shape, data_offsets: [0, data.byteLength] } });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const path = join(dir, name);
  writeFileSync(
    path,
    Buffer.concat([len, Buffer.from(json), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]),
  );
  return path;
}

const entry = (path: string) => readSafetensorsHeader(path).entries.get('t')!;

// Edge patterns: ±0, 1, ±inf, NaNs (quiet, signalling, negative with payload), subnormals, max.
const edgeBits = Uint16Array.from([
  0x0000, 0x8000, 0x3f80, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffa5, 0x0001, 0x807f, 0x7f7f, 0x4049,
]);

function checkBf16Bits(device: Device): void {
  tidy(() => {
    const path = file(`edges-${device}.safetensors`, 'BF16', [3, 4], edgeBits);
    const t = readTensor(entry(path), { dtype: 'bfloat16', device });
    expect([t.dtype, t.device, t.shape]).toEqual(['bfloat16', device, [3, 4]]);
    expect(Array.from(t.to('cpu').toTypedArray())).toEqual(Array.from(edgeBits));
    // The float32 default is the same values widened exactly.
    const f = readTensor(entry(path), { device });
    expect(f.dtype).toBe('float32');
    expect(Array.from(new Uint32Array((f.to('cpu').toTypedArray() as Float32Array).buffer))).toEqual(
      Array.from(edgeBits, (h) => (h << 16) >>> 0),
    );
  });
}

describe('readTensor as bfloat16 (CPU)', () => {
  it('BF16 on disk equals its bits: NaN payloads, subnormals and infinities included', () =>
    checkBf16Bits('cpu'));

  it('BF16 across several staging chunks (16 MB each) equals its bits', () => {
    tidy(() => {
      // 8.5 M elements = 17 MB: two chunks, the second partial.
      const n = 8.5 * 1024 * 1024;
      const bits = new Uint16Array(n);
      const rand = seededRandom(3);
      for (let i = 0; i < n; i++) bits[i] = (rand() * 65536) | 0;
      const path = file('big.safetensors', 'BF16', [n / 1024, 1024], bits);
      const got = readTensor(entry(path), { dtype: 'bfloat16' }).toTypedArray() as Uint16Array;
      expect(Buffer.from(got.buffer).equals(Buffer.from(bits.buffer))).toBe(true);
      rmSync(path);
    });
  });

  it('F32 on disk rounds to nearest even (hand-made ties) and agrees with cast', () => {
    tidy(() => {
      const rand = seededRandom(5);
      const ties = [0x3f808000, 0x3f818000, 0x7f7fffff, 0x7fc00000, 0x00018000];
      const bits = Uint32Array.from([
        ...ties,
        ...Array.from({ length: 1000 }, () => (rand() * 2 ** 32) >>> 0),
      ]);
      const path = file('f32.safetensors', 'F32', [bits.length], bits);
      const got = readTensor(entry(path), { dtype: 'bfloat16' }).toTypedArray() as Uint16Array;
      expect(Array.from(got.subarray(0, ties.length))).toEqual([0x3f80, 0x3f82, 0x7f80, 0x7fc0, 0x0002]);
      const viaCast = cast(
        Tensor.from(new Float32Array(bits.buffer), [bits.length]),
        'bfloat16',
      ).toTypedArray();
      expect(got).toEqual(viaCast);
    });
  });

  it('F16 on disk widens exactly, then rounds to bf16', () => {
    tidy(() => {
      // 1 + 2^-8: a bf16 tie above an even 0x3f80, stays; 1 + 3 * 2^-8: a tie above an odd 0x3f81,
      // up to 0x3f82; 1 + 2^-9: below the tie; 2^-24 (the smallest f16 subnormal, a bf16 normal
      // 0x3380); -2; f16 inf and NaN.
      const half = Uint16Array.from([0x3c04, 0x3c0c, 0x3c02, 0x0001, 0xc000, 0x7c00, 0x7e00]);
      const path = file('f16.safetensors', 'F16', [half.length], half);
      const got = Array.from(readTensor(entry(path), { dtype: 'bfloat16' }).toTypedArray());
      expect(got).toEqual([0x3f80, 0x3f82, 0x3f80, 0x3380, 0xc000, 0x7f80, 0x7fc0]);
    });
  });

  it('rejects a dtype it cannot make, naming the tensor', () => {
    const path = file('bad.safetensors', 'BF16', [1], Uint16Array.from([0x3f80]));
    expect(() => readTensor(entry(path), { dtype: 'int32' as never })).toThrow(
      /readTensor: dtype must be 'float32' or 'bfloat16' \(got "int32"\) for tensor "t"/,
    );
  });
});

describeGpu(native, 'readTensor as bfloat16 on CUDA', () => {
  it('BF16 on disk equals its bits in device memory', () => checkBf16Bits('cuda'));
});
