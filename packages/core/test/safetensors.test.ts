import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fixture, fixturePath, isPublicFixtureSet, PUBLIC_SET_ONLY } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor, tidy } from '../src/index.js';
import { openCheckpoint, saveCheckpointTensors } from '../src/io/checkpoint.js';
import { readSafetensorsHeader, readTensor, writeSafetensors } from '../src/io/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'othink-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A safetensors file from raw parts, for the malformed cases. */
function rawFile(name: string, header: object | string, data: Uint8Array, lengthOverride?: number): string {
  const json = typeof header === 'string' ? header : JSON.stringify(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(lengthOverride ?? Buffer.byteLength(json)));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), Buffer.from(data)]));
  return path;
}

describe('safetensors', () => {
  it('reads every weight of the tiny checkpoint exactly', () => {
    const header = readSafetensorsHeader(fixturePath('qwen2vl-tiny/model.safetensors'));
    const ref = new Fixture('qwen2vl-tiny/model.safetensors');
    // Every tensor the independent fixture reader sees, no more, no less.
    expect([...header.entries.keys()].sort()).toEqual([...ref.tensors.keys()].sort());
    for (const [name, entry] of header.entries) {
      const t = readTensor(entry);
      expect(t.shape).toEqual(ref.shape(name));
      expect(t.toFloat32Array()).toEqual(ref.get(name).data);
      t.dispose();
    }
  });

  it.skipIf(!isPublicFixtureSet('qwen2vl-tiny'))(
    `the public tiny checkpoint has 57 tensors ${PUBLIC_SET_ONLY}`,
    () => {
      // The 57 parameters listed in fixtures/README.md.
      expect(readSafetensorsHeader(fixturePath('qwen2vl-tiny/model.safetensors')).entries.size).toBe(57);
    },
  );

  it('round-trips F32 and BF16 (round to nearest even), single file and sharded', () => {
    tidy(() => {
      const a = Tensor.from([1, -2.5, 2.7182817, 1e-30], [2, 2]);
      const b = Tensor.from([0.1, 0.2, 0.3], [3]);
      writeSafetensors(join(dir, 'f32.safetensors'), [
        ['a', a],
        ['b', b],
      ]);
      const h = readSafetensorsHeader(join(dir, 'f32.safetensors'));
      expect(Array.from(readTensor(h.entries.get('a')!).toFloat32Array())).toEqual(
        Array.from(a.toFloat32Array()),
      );
      writeSafetensors(join(dir, 'bf16.safetensors'), [['a', a]], { dtype: 'BF16' });
      const back = readTensor(
        readSafetensorsHeader(join(dir, 'bf16.safetensors')).entries.get('a')!,
      ).toFloat32Array();
      // bf16 keeps 8 significant bits: 2.7182817 -> 2.71875, -2.5 exact.
      expect(Array.from(back.subarray(0, 3))).toEqual([1, -2.5, 2.71875]);
      const shardDir = mkdtempSync(join(dir, 'sharded-'));
      const files = saveCheckpointTensors(
        shardDir,
        [
          ['a', a],
          ['b', b],
        ],
        { maxShardBytes: 16 },
      );
      expect(files).toEqual([
        'model-00001-of-00002.safetensors',
        'model-00002-of-00002.safetensors',
        'model.safetensors.index.json',
      ]);
      const index = JSON.parse(readFileSync(join(shardDir, 'model.safetensors.index.json'), 'utf8'));
      expect(index.weight_map).toEqual({ a: files[0], b: files[1] });
      const entries = openCheckpoint(shardDir);
      expect(Array.from(readTensor(entries.get('b')!).toFloat32Array())).toEqual(
        Array.from(b.toFloat32Array()),
      );
    });
  });

  it('malformed files are errors that name the file and the tensor', () => {
    const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    expect(() =>
      readSafetensorsHeader(rawFile('short.st', '', new Uint8Array(0)).replace('short', 'nope')),
    ).toThrow(/ENOENT/);
    writeFileSync(join(dir, 'tiny.st'), Buffer.alloc(5));
    expect(() => readSafetensorsHeader(join(dir, 'tiny.st'))).toThrow(
      /tiny.st: truncated safetensors file \(5 bytes/,
    );
    expect(() => readSafetensorsHeader(rawFile('long.st', ok, new Uint8Array(8), 10_000))).toThrow(
      /long.st: header length 10000 is longer than the file/,
    );
    expect(() => readSafetensorsHeader(rawFile('json.st', '{"w": ', new Uint8Array(8)))).toThrow(
      /json.st: the header is not valid JSON/,
    );
    expect(() =>
      readSafetensorsHeader(
        rawFile('dtype.st', { w: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      ),
    ).toThrow(/dtype.st: tensor "w" has unknown dtype "Q4"/);
    expect(() =>
      readSafetensorsHeader(
        rawFile('range.st', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
      ),
    ).toThrow(
      /range.st: tensor "w": data_offsets \[0, 16\] are out of range \(the file holds 8 data bytes\)/,
    );
    expect(() =>
      readSafetensorsHeader(
        rawFile('shape.st', { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      ),
    ).toThrow(/shape.st: tensor "w": 8 bytes for shape \[3\] of F32 \(expected 12\)/);
    const i64 = rawFile(
      'i64.st',
      { w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } },
      new Uint8Array(8),
    );
    expect(() => readTensor(readSafetensorsHeader(i64).entries.get('w')!)).toThrow(
      /i64.st: tensor "w" is I64; model weights must be F32, BF16 or F16/,
    );
  });

  it('F16 weights load as float32', () => {
    // 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, 2^-24 = 0x0001 (subnormal)
    const data = new Uint8Array(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001).buffer);
    const path = rawFile('f16.st', { w: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }, data);
    const t = readTensor(readSafetensorsHeader(path).entries.get('w')!);
    expect(Array.from(t.toFloat32Array())).toEqual([1, -2, 65504, 2 ** -24]);
    t.dispose();
  });
});
