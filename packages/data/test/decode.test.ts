// decodeImage against Pillow 9.4: every file of fixtures/image-processor-extra/decode/ must decode to
// exactly what PIL's convert('RGB') (alpha 'drop') or alpha_composite over white (alpha 'white') gives.
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fixture, fixturesDir } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { decodeImage, sniffImageFormat } from '../src/image/index.js';

// The extra fixtures live in this repository; reach them from whatever folder OTHINK_FIXTURES names.
const extraDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../fixtures/image-processor-extra');
const extra = (name: string) => relative(fixturesDir(), join(extraDir, name));

const expected = new Fixture(extra('decode/expected.safetensors'));
const files = [...expected.tensors.keys()]
  .filter((k) => k.endsWith('.drop'))
  .map((k) => k.slice(0, -'.drop'.length));

function countDiffs(actual: Uint8Array, want: Uint8Array): { count: number; max: number } {
  let count = 0;
  let max = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(actual[i] - want[i]);
    if (d) count++;
    if (d > max) max = d;
  }
  return { count, max };
}

describe('decodeImage matches Pillow', () => {
  it('covers PNG, JPEG and WebP in every PIL mode of the fixture', () => {
    expect(files.length).toBe(18);
    expect(new Set(files.map((f) => f.split('.').pop()))).toEqual(new Set(['png', 'jpg', 'webp']));
  });

  for (const file of files) {
    for (const alpha of ['drop', 'white'] as const) {
      it(`${file} with alpha '${alpha}'`, async () => {
        const want = expected.get(`${file}.${alpha}`);
        const image = await decodeImage(join(extraDir, 'decode', file), { alpha });
        expect([image.height, image.width, 3]).toEqual(want.shape);
        expect(countDiffs(image.data, want.data as Uint8Array)).toEqual({ count: 0, max: 0 });
      });
    }
  }

  it('drops alpha by default, like transformers convert_to_rgb for Qwen2-VL', async () => {
    const bytes = readFileSync(join(extraDir, 'decode/rgba.png'));
    const byDefault = await decodeImage(bytes);
    const want = expected.get('rgba.png.drop').data as Uint8Array;
    expect(countDiffs(byDefault.data, want).count).toBe(0);
    // The fixture's first 8 pixels are fully transparent: white only when compositing.
    const white = await decodeImage(bytes, { alpha: 'white' });
    expect([...white.data.subarray(0, 24)].every((v) => v === 255)).toBe(true);
    expect([...byDefault.data.subarray(0, 24)].every((v) => v === 255)).toBe(false);
  });

  it('decodes bytes and paths identically', async () => {
    const path = join(extraDir, 'decode/lossy.webp');
    const a = await decodeImage(path);
    const b = await decodeImage(new Uint8Array(readFileSync(path)));
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
  });
});

describe('decodeImage errors', () => {
  it('names a file that is not an image', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'othink-decode-'));
    const path = join(dir, 'foo.png');
    await writeFile(path, 'hello, I am text');
    await expect(decodeImage(path)).rejects.toThrow(`${path}: not a PNG/JPEG/WebP image`);
  });

  it('rejects GIF and empty input as not PNG/JPEG/WebP', async () => {
    const gif = new TextEncoder().encode('GIF89a\x01\x00\x01\x00\x00\x00\x00;');
    await expect(decodeImage(gif, { name: 'x.gif' })).rejects.toThrow('x.gif: not a PNG/JPEG/WebP image');
    await expect(decodeImage(new Uint8Array(0))).rejects.toThrow('not a PNG/JPEG/WebP image');
  });

  it('reports truncated or corrupt PNG / JPEG / WebP data with the format', async () => {
    for (const [file, format] of [
      ['rgb.png', 'PNG'],
      ['rgb.jpg', 'JPEG'],
      ['lossy.webp', 'WEBP'],
    ]) {
      const bytes = readFileSync(join(extraDir, 'decode', file));
      const truncated = bytes.subarray(0, Math.floor(bytes.length / 2));
      await expect(decodeImage(truncated, { name: file })).rejects.toThrow(
        `${file}: cannot decode ${format} image`,
      );
      const corrupt = Uint8Array.from(bytes);
      corrupt.fill(0x5a, 16, Math.min(corrupt.length, 400));
      await expect(decodeImage(corrupt, { name: file })).rejects.toThrow(
        `${file}: cannot decode ${format} image`,
      );
    }
  });

  it('names a missing file', async () => {
    await expect(decodeImage('/nonexistent/x.png')).rejects.toThrow('cannot read image /nonexistent/x.png');
  });

  it('rejects an unknown alpha mode', async () => {
    // @ts-expect-error: checked at run time for JavaScript callers
    await expect(decodeImage(new Uint8Array(8), { alpha: 'black' })).rejects.toThrow(
      "alpha must be 'drop' or 'white'",
    );
  });
});

describe('sniffImageFormat', () => {
  it('recognises the magic numbers', () => {
    for (const [file, format] of [
      ['rgb.png', 'png'],
      ['rgb.jpg', 'jpeg'],
      ['alpha.webp', 'webp'],
    ]) {
      expect(sniffImageFormat(readFileSync(join(extraDir, 'decode', file)))).toBe(format);
    }
    expect(
      sniffImageFormat(new Uint8Array([0x52, 0x49, 0x46, 0x46, 0, 0, 0, 0, 0x41, 0x56, 0x49, 0x20])),
    ).toBe(undefined);
  });
});
