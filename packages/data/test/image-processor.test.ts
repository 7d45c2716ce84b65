// The Qwen2-VL image processor against the fixtures: fixtures/image-processor (public set, 7 cases) and
// fixtures/image-processor-extra (9 more cases from the same numpy + Pillow 9.4 reference: strong
// downscales, extreme aspect ratios, RGBA / gray / palette / JPEG inputs). Sizes, grids and resized_u8
// must match exactly; pixel_values bit for bit (float32 op order followed).
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Fixture,
  fixturePath,
  fixturesDir,
  imageProcessorManifest,
  isPublicFixtureSet,
  maxAbsDiff,
  PUBLIC_SET_ONLY,
} from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  decodeImage,
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  Qwen2VLImageProcessor,
  resizeBicubic,
  roundHalfToEven,
  smartResize,
} from '../src/image/index.js';
import type { RgbImage } from '../src/schema.js';

const extraDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../fixtures/image-processor-extra');
const extra = (name: string) => relative(fixturesDir(), join(extraDir, name));

interface Case {
  name: string;
  file: string;
  tensors: string;
  min_pixels: number;
  max_pixels: number;
  input_height: number;
  input_width: number;
  resized_height: number;
  resized_width: number;
  image_grid_thw: [number, number, number];
  num_image_tokens: number;
}

// The image-processor area of the fixture folder in use (OTHINK_FIXTURES): cases from its manifest.
const publicCases: (Case & { dir: string })[] = imageProcessorManifest().cases.map((c) => ({
  ...(c as unknown as Case),
  file: relative('image-processor', c.image),
  tensors: relative('image-processor', c.tensors),
  dir: 'image-processor',
}));
const extraManifest = JSON.parse(readFileSync(join(extraDir, 'manifest.json'), 'utf8'));
const extraCases: (Case & { dir: string })[] = extraManifest.cases.map((c: Case) => ({
  ...c,
  dir: extra('.'),
}));

/** Number of differing elements and the largest difference. */
function mismatches(actual: ArrayLike<number>, expected: ArrayLike<number>): { count: number; max: number } {
  expect(actual.length).toBe(expected.length);
  let count = 0;
  for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) count++;
  return { count, max: maxAbsDiff(actual, expected).diff };
}

const QWEN2VL_2B_PREPROCESSOR_CONFIG = {
  min_pixels: 3136,
  max_pixels: 12845056,
  patch_size: 14,
  temporal_patch_size: 2,
  merge_size: 2,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  image_processor_type: 'Qwen2VLImageProcessor',
  processor_class: 'Qwen2VLProcessor',
};

let worstPixelDiff = 0;

describe.each([...publicCases, ...extraCases])('fixture $dir/$name', (c) => {
  const fx = new Fixture(join(c.dir, c.tensors));
  const processor = new Qwen2VLImageProcessor({ minPixels: c.min_pixels, maxPixels: c.max_pixels });
  let image: RgbImage;

  it('decodes the file to image_u8', async () => {
    image = await decodeImage(fixturePath(join(c.dir, c.file)));
    expect([image.height, image.width]).toEqual([c.input_height, c.input_width]);
    if (fx.has('image_u8')) {
      expect(fx.shape('image_u8')).toEqual([c.input_height, c.input_width, 3]);
      expect(mismatches(image.data, fx.get('image_u8').data as Uint8Array).count).toBe(0);
    }
  });

  it('smart_resize gives the resized size exactly', () => {
    expect(
      smartResize(c.input_height, c.input_width, { minPixels: c.min_pixels, maxPixels: c.max_pixels }),
    ).toEqual([c.resized_height, c.resized_width]);
    expect(fx.shape('resized_u8')).toEqual([c.resized_height, c.resized_width, 3]);
  });

  it('resizeBicubic equals Pillow BICUBIC bit for bit (resized_u8)', () => {
    const resized = resizeBicubic(image, c.resized_width, c.resized_height);
    expect([resized.height, resized.width]).toEqual([c.resized_height, c.resized_width]);
    expect(mismatches(resized.data, fx.get('resized_u8').data as Uint8Array)).toEqual({ count: 0, max: 0 });
  });

  it('process gives image_grid_thw, the token count and (where stored) pixel_values exactly', () => {
    const out = processor.process(image);
    expect(out.gridThw).toEqual(Array.from(fx.f64('image_grid_thw')));
    expect(out.gridThw).toEqual(c.image_grid_thw);
    expect(out.numImageTokens).toBe(c.num_image_tokens);
    expect(processor.numImageTokens(c.input_height, c.input_width)).toBe(c.num_image_tokens);
    expect(out.pixelValues.length).toBe(out.gridThw[0] * out.gridThw[1] * out.gridThw[2] * 1176);
    if (fx.has('pixel_values')) {
      expect(fx.shape('pixel_values')).toEqual([out.gridThw[1] * out.gridThw[2], 1176]);
      const diff = mismatches(out.pixelValues, fx.get('pixel_values').data as Float32Array);
      worstPixelDiff = Math.max(worstPixelDiff, diff.max);
      expect(diff).toEqual({ count: 0, max: 0 });
    }
  });
});

describe('fixture coverage', () => {
  it('checked every case with pixel values bit-exact', () => {
    expect(publicCases.length).toBeGreaterThan(0);
    expect(publicCases.every((c) => new Fixture(join(c.dir, c.tensors)).has('pixel_values'))).toBe(true);
    expect(worstPixelDiff).toBe(0);
  });

  it.skipIf(!isPublicFixtureSet('image-processor'))(`the public set's 7 + 9 cases ${PUBLIC_SET_ONLY}`, () => {
    expect(publicCases.length).toBe(7);
    expect(extraCases.length).toBe(9);
  });
});

describe('smartResize', () => {
  it.each(
    extraManifest.smart_resize as {
      height: number;
      width: number;
      min_pixels: number;
      max_pixels: number;
      resized: number[];
    }[],
  )(
    '$height x $width (min $min_pixels, max $max_pixels) -> $resized',
    ({ height, width, min_pixels, max_pixels, resized }) => {
      expect(smartResize(height, width, { minPixels: min_pixels, maxPixels: max_pixels })).toEqual(resized);
    },
  );

  it('rounds halves to even (Python round), unlike Math.round', () => {
    expect([0.5, 1.5, 2.5, 3.5, 4.5, 5.5].map(roundHalfToEven)).toEqual([0, 2, 2, 4, 4, 6]);
    expect([2.4999999, 2.5000001, 7, 0.49].map(roundHalfToEven)).toEqual([2, 3, 7, 0]);
    // 126 / 28 = 4.5: Python keeps 112 where a half-up round would give 140.
    expect(smartResize(126, 126, { maxPixels: 12845056 })).toEqual([112, 112]);
  });

  it('uses the class defaults 3136 / 1,003,520 when no limits are given', () => {
    expect(smartResize(1080, 1920)).toEqual([728, 1316]);
  });

  it('rejects a side shorter than 28 with the size in the message', () => {
    expect(() => smartResize(20, 500)).toThrow(
      'image 500x20 is too small: both sides must be at least 28 pixels',
    );
    expect(() => smartResize(3, 2000)).toThrow('image 2000x3 is too small');
  });

  it('rejects an aspect ratio above 200 like HF', () => {
    expect(() => smartResize(28, 5700)).toThrow('image 5700x28 has aspect ratio 203.6 > 200');
    expect(() => smartResize(6000, 29)).toThrow('image 29x6000 has aspect ratio 206.9 > 200');
    expect(smartResize(28, 5600, { maxPixels: 12845056 })).toEqual([28, 5600]); // exactly 200 passes
  });

  it('rejects limits that would leave a side of 0 and inconsistent limits', () => {
    expect(() => smartResize(28, 5000, { maxPixels: 3136 })).toThrow('a side would be 0');
    expect(() => smartResize(100, 100, { minPixels: 5000, maxPixels: 4000 })).toThrow(
      'min_pixels <= max_pixels',
    );
    expect(() => smartResize(10.5, 100)).toThrow('must be positive integers');
  });
});

describe('resizeBicubic', () => {
  it('returns the same image when the size does not change', () => {
    const image = { width: 3, height: 2, data: new Uint8Array(18).fill(7) };
    expect(resizeBicubic(image, 3, 2)).toBe(image);
  });

  it('keeps a constant image constant in both directions (weights sum to 1 in fixed point)', () => {
    const image = { width: 57, height: 31, data: new Uint8Array(57 * 31 * 3).fill(200) };
    for (const [w, h] of [
      [28, 28],
      [200, 90],
      [13, 300],
    ]) {
      expect(resizeBicubic(image, w, h).data.every((v) => v === 200)).toBe(true);
    }
  });

  it('rejects bad sizes and data', () => {
    const image = { width: 2, height: 2, data: new Uint8Array(12) };
    expect(() => resizeBicubic(image, 0, 5)).toThrow('target size 0x5');
    expect(() => resizeBicubic({ ...image, data: new Uint8Array(11) }, 4, 4)).toThrow(
      '11 bytes, expected 2x2x3 = 12',
    );
  });
});

describe('Qwen2VLImageProcessor', () => {
  // The largest and the smallest image of the set processed with the 2B defaults (the manifest
  // records the min / max pixels each case used).
  const byTokens = publicCases
    .filter((k) => k.min_pixels === 3136 && k.max_pixels === 12845056)
    .sort((a, b) => b.num_image_tokens - a.num_image_tokens);
  if (byTokens.length < 2) throw new Error('the image-processor set needs two cases with the 2B defaults');
  const c = byTokens[0];
  const other = byTokens.at(-1)!;
  const fx = new Fixture(join(c.dir, c.tensors));
  const loadImage = () => decodeImage(fixturePath(join(c.dir, c.file)));

  it('fromPretrained reads preprocessor_config.json (Qwen2-VL-2B-Instruct) and matches the fixture', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'othink-preproc-'));
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify(QWEN2VL_2B_PREPROCESSOR_CONFIG));
    const processor = await Qwen2VLImageProcessor.fromPretrained(dir);
    expect(processor.options.minPixels).toBe(3136);
    expect(processor.options.maxPixels).toBe(12845056);
    expect(processor.options.imageMean).toEqual(OPENAI_CLIP_MEAN);
    expect(processor.options.imageStd).toEqual(OPENAI_CLIP_STD);
    const out = processor.process(await loadImage());
    expect(mismatches(out.pixelValues, fx.get('pixel_values').data as Float32Array).count).toBe(0);
  });

  it('reads the newer size: {shortest_edge, longest_edge} form, explicit min/max_pixels win', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'othink-preproc-'));
    const file = join(dir, 'preprocessor_config.json');
    await writeFile(file, JSON.stringify({ size: { shortest_edge: 1000, longest_edge: 50000 } }));
    expect((await Qwen2VLImageProcessor.fromPretrained(file)).options).toMatchObject({
      minPixels: 1000,
      maxPixels: 50000,
    });
    await writeFile(
      file,
      JSON.stringify({ size: { shortest_edge: 1000, longest_edge: 50000 }, max_pixels: 60000 }),
    );
    expect((await Qwen2VLImageProcessor.fromPretrained(dir)).options.maxPixels).toBe(60000);
    const overridden = await Qwen2VLImageProcessor.fromPretrained(dir, { maxPixels: 70000 });
    expect(overridden.options.maxPixels).toBe(70000);
  });

  it('refuses configs it cannot honour, naming the key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'othink-preproc-'));
    const file = join(dir, 'preprocessor_config.json');
    await writeFile(file, JSON.stringify({ resample: 2 }));
    await expect(Qwen2VLImageProcessor.fromPretrained(dir)).rejects.toThrow('resample 2 is not supported');
    await writeFile(file, JSON.stringify({ image_mean: [0.5, 0.5] }));
    await expect(Qwen2VLImageProcessor.fromPretrained(dir)).rejects.toThrow(
      'image_mean must be a number or 3 numbers',
    );
    await writeFile(file, '{ not json');
    await expect(Qwen2VLImageProcessor.fromPretrained(dir)).rejects.toThrow('is not valid JSON');
    await expect(Qwen2VLImageProcessor.fromPretrained(join(dir, 'missing'))).rejects.toThrow('cannot read');
    expect(() => new Qwen2VLImageProcessor({ minPixels: 10_000, maxPixels: 5000 })).toThrow(
      'minPixels 10000 > maxPixels 5000',
    );
    expect(() => new Qwen2VLImageProcessor({ minPixels: 100, maxPixels: 500 })).toThrow(
      'maxPixels 500 < 28^2',
    );
    expect(() => new Qwen2VLImageProcessor({ patchSize: 0 })).toThrow('patchSize must be a positive integer');
  });

  it('reports images it cannot process', () => {
    const processor = new Qwen2VLImageProcessor({ maxPixels: 12845056 });
    expect(() => processor.process({ width: 10, height: 10, data: new Uint8Array(299) })).toThrow(
      'image data has 299 bytes, expected 10x10x3 = 300',
    );
    expect(() => processor.process({ width: 2000, height: 3, data: new Uint8Array(18000) })).toThrow(
      'too small',
    );
    expect(() => processor.process({ width: 5800, height: 28, data: new Uint8Array(5800 * 28 * 3) })).toThrow(
      'aspect ratio 207.1 > 200',
    );
  });

  it('processBatch concatenates the images in order', async () => {
    const processor = new Qwen2VLImageProcessor({ maxPixels: 12845056 });
    const fxOther = new Fixture(join(other.dir, other.tensors));
    const batch = processor.processBatch([
      await loadImage(),
      await decodeImage(fixturePath(join(other.dir, other.file))),
    ]);
    expect(batch.imageGridThw).toEqual([c.image_grid_thw, other.image_grid_thw]);
    expect(batch.numImageTokens).toEqual([c.num_image_tokens, other.num_image_tokens]);
    const a = fx.get('pixel_values').data as Float32Array;
    const b = fxOther.get('pixel_values').data as Float32Array;
    expect(mismatches(batch.pixelValues.subarray(0, a.length), a).count).toBe(0);
    expect(mismatches(batch.pixelValues.subarray(a.length), b).count).toBe(0);
  });

  it('duplicates the frame into both temporal slots and orders features (c, t, dy, dx)', async () => {
    const out = new Qwen2VLImageProcessor({ maxPixels: 12845056 }).process(await loadImage());
    for (let row = 0; row < out.gridThw[1] * out.gridThw[2]; row += 37) {
      for (let c = 0; c < 3; c++) {
        const t0 = out.pixelValues.subarray(row * 1176 + c * 392, row * 1176 + c * 392 + 196);
        const t1 = out.pixelValues.subarray(row * 1176 + c * 392 + 196, row * 1176 + c * 392 + 392);
        expect(Array.from(t1)).toEqual(Array.from(t0));
      }
    }
  });
});
