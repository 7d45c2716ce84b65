// The slow (PIL) `Qwen2VLImageProcessor` of transformers (spec §5.2, §5.4; fixtures/README §3):
// smart_resize -> Pillow bicubic on uint8 -> x * (1/255) in float64 cast to float32 -> (x - mean) / std
// in float32 -> CHW -> the frame repeated to temporal_patch_size frames -> merge-window patch order.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessedImage, RgbImage } from '../schema.js';
import { resizeBicubic } from './resize.js';
import { smartResize } from './smart-resize.js';

/** OPENAI_CLIP_MEAN / OPENAI_CLIP_STD of transformers' `image_utils`. */
export const OPENAI_CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** The knobs of `preprocessor_config.json`, camel-cased. Defaults: the transformers class defaults. */
export interface Qwen2VLImageProcessorOptions {
  /** Smallest resized area (default 56*56 = 3136). */
  minPixels: number;
  /** Largest resized area (class default 28*28*1280 = 1,003,520; Qwen2-VL-2B-Instruct ships 12,845,056). */
  maxPixels: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  imageMean: readonly [number, number, number];
  imageStd: readonly [number, number, number];
  doResize: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
}

export const QWEN2VL_IMAGE_PROCESSOR_DEFAULTS: Readonly<Qwen2VLImageProcessorOptions> = {
  minPixels: 56 * 56,
  maxPixels: 28 * 28 * 1280,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  imageMean: OPENAI_CLIP_MEAN,
  imageStd: OPENAI_CLIP_STD,
  doResize: true,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
};

/** PIL resample code of BICUBIC, the only filter this port implements. */
const PIL_BICUBIC = 3;

function triple(value: unknown, key: string): [number, number, number] {
  if (typeof value === 'number') return [value, value, value];
  if (Array.isArray(value) && value.length === 3 && value.every((v) => typeof v === 'number')) {
    return [value[0], value[1], value[2]];
  }
  throw new Error(
    `preprocessor_config.json: ${key} must be a number or 3 numbers, got ${JSON.stringify(value)}`,
  );
}

/**
 * Options from the JSON of a `preprocessor_config.json`. Reads `min_pixels` / `max_pixels` and the newer
 * `size: { shortest_edge, longest_edge }` (pixel counts despite the names); explicit `min_pixels` /
 * `max_pixels` win, as in transformers' constructor.
 */
export function imageProcessorOptionsFromConfig(
  config: Record<string, unknown>,
): Partial<Qwen2VLImageProcessorOptions> {
  const options: Partial<Qwen2VLImageProcessorOptions> = {};
  const num = (key: string): number | undefined => {
    const v = config[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new Error(`preprocessor_config.json: ${key} must be a number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const bool = (key: string): boolean | undefined => {
    const v = config[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw new Error(`preprocessor_config.json: ${key} must be true or false`);
    return v;
  };
  const size = config.size as Record<string, unknown> | undefined;
  if (size && typeof size === 'object') {
    if (typeof size.shortest_edge === 'number') options.minPixels = size.shortest_edge;
    if (typeof size.longest_edge === 'number') options.maxPixels = size.longest_edge;
  }
  const set = <K extends keyof Qwen2VLImageProcessorOptions>(
    key: K,
    value: Qwen2VLImageProcessorOptions[K] | undefined,
  ) => {
    if (value !== undefined) options[key] = value;
  };
  set('minPixels', num('min_pixels'));
  set('maxPixels', num('max_pixels'));
  set('patchSize', num('patch_size'));
  set('temporalPatchSize', num('temporal_patch_size'));
  set('mergeSize', num('merge_size'));
  set('rescaleFactor', num('rescale_factor'));
  set('doResize', bool('do_resize'));
  set('doRescale', bool('do_rescale'));
  set('doNormalize', bool('do_normalize'));
  if (config.image_mean !== undefined) options.imageMean = triple(config.image_mean, 'image_mean');
  if (config.image_std !== undefined) options.imageStd = triple(config.image_std, 'image_std');
  const resample = num('resample');
  if (resample !== undefined && resample !== PIL_BICUBIC) {
    throw new Error(
      `preprocessor_config.json: resample ${resample} is not supported; only BICUBIC (3) is implemented`,
    );
  }
  return options;
}

export class Qwen2VLImageProcessor {
  readonly options: Readonly<Qwen2VLImageProcessorOptions>;
  /** uint8 value -> final float32 value, per channel: `lut[c * 256 + u]`. */
  private readonly lut: Float32Array;

  constructor(options: Partial<Qwen2VLImageProcessorOptions> = {}) {
    const o = { ...QWEN2VL_IMAGE_PROCESSOR_DEFAULTS, ...options };
    for (const key of ['patchSize', 'temporalPatchSize', 'mergeSize', 'minPixels', 'maxPixels'] as const) {
      if (!Number.isInteger(o[key]) || o[key] <= 0)
        throw new Error(`Qwen2VLImageProcessor: ${key} must be a positive integer, got ${o[key]}`);
    }
    if (o.minPixels > o.maxPixels) {
      throw new Error(`Qwen2VLImageProcessor: minPixels ${o.minPixels} > maxPixels ${o.maxPixels}`);
    }
    const factor = o.patchSize * o.mergeSize;
    if (o.maxPixels < factor * factor) {
      throw new Error(
        `Qwen2VLImageProcessor: maxPixels ${o.maxPixels} < ${factor}^2, no image could be resized`,
      );
    }
    for (const s of o.imageStd)
      if (!(s !== 0)) throw new Error(`Qwen2VLImageProcessor: imageStd ${o.imageStd} has a zero`);
    this.options = Object.freeze(o);
    this.lut = buildLut(o);
  }

  /** Reads `<dir>/preprocessor_config.json` (or the file itself when given a .json path). */
  static async fromPretrained(
    dirOrFile: string,
    overrides: Partial<Qwen2VLImageProcessorOptions> = {},
  ): Promise<Qwen2VLImageProcessor> {
    const path = dirOrFile.endsWith('.json') ? dirOrFile : join(dirOrFile, 'preprocessor_config.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new Error(`cannot read ${path}: ${(e as Error).message}`);
    }
    let config: Record<string, unknown>;
    try {
      config = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
    }
    return new Qwen2VLImageProcessor({ ...imageProcessorOptionsFromConfig(config), ...overrides });
  }

  /** patch_size * merge_size: the resized sides are multiples of this (28). */
  get factor(): number {
    return this.options.patchSize * this.options.mergeSize;
  }

  /** `[height, width]` the image is resized to (smart_resize; unchanged when doResize is false). */
  resizedSize(height: number, width: number): [number, number] {
    const { minPixels, maxPixels, doResize } = this.options;
    if (!doResize) return [height, width];
    return smartResize(height, width, { factor: this.factor, minPixels, maxPixels });
  }

  /** Number of `<|image_pad|>` tokens an image of this size takes, without processing it. */
  numImageTokens(height: number, width: number): number {
    const [h, w] = this.resizedSize(height, width);
    return (h / this.factor) * (w / this.factor);
  }

  /** The full pipeline for one image: `pixelValues` `[t*h*w, 3*T*P*P]` in merge-window order. */
  process(image: RgbImage): ProcessedImage {
    const { width, height, data } = image;
    if (data.length !== width * height * 3) {
      throw new Error(
        `image data has ${data.length} bytes, expected ${width}x${height}x3 = ${width * height * 3} (RGB)`,
      );
    }
    const [rh, rw] = this.resizedSize(height, width);
    const { patchSize: P, mergeSize: M } = this.options;
    if (rh % (P * M) !== 0 || rw % (P * M) !== 0) {
      throw new Error(
        `image ${rw}x${rh} is not a multiple of patch_size*merge_size = ${P * M}; enable doResize`,
      );
    }
    const resized = rh === height && rw === width ? image : resizeBicubic(image, rw, rh);
    return {
      pixelValues: this.patchify(resized.data, rh, rw),
      gridThw: [1, rh / P, rw / P],
      numImageTokens: (rh * rw) / (P * M) ** 2,
    };
  }

  /** Several images: pixel values concatenated in order (as the HF processor returns a batch). */
  processBatch(images: readonly RgbImage[]): {
    pixelValues: Float32Array;
    imageGridThw: [number, number, number][];
    numImageTokens: number[];
  } {
    const parts = images.map((im) => this.process(im));
    const total = parts.reduce((n, p) => n + p.pixelValues.length, 0);
    const pixelValues = new Float32Array(total);
    let offset = 0;
    for (const p of parts) {
      pixelValues.set(p.pixelValues, offset);
      offset += p.pixelValues.length;
    }
    return {
      pixelValues,
      imageGridThw: parts.map((p) => p.gridThw),
      numImageTokens: parts.map((p) => p.numImageTokens),
    };
  }

  /**
   * HF's reshape (1, T, 3, h/M, M, P, w/M, M, P) + transpose (0,3,6,4,7,2,1,5,8): rows go block-row,
   * block-col, intra-row, intra-col; features ((c*T + t)*P + dy)*P + dx. A single image fills all T
   * temporal slots with the same frame.
   */
  private patchify(rgb: Uint8Array, height: number, width: number): Float32Array {
    const { patchSize: P, mergeSize: M, temporalPatchSize: T } = this.options;
    const gh = height / P;
    const gw = width / P;
    const rowLen = 3 * T * P * P;
    const out = new Float32Array(gh * gw * rowLen);
    const lut = this.lut;
    const stride = width * 3;
    let row = 0;
    for (let bh = 0; bh < gh / M; bh++) {
      for (let bw = 0; bw < gw / M; bw++) {
        for (let mr = 0; mr < M; mr++) {
          for (let mc = 0; mc < M; mc++) {
            const y0 = (bh * M + mr) * P;
            const x0 = (bw * M + mc) * P;
            const rowBase = row * rowLen;
            for (let c = 0; c < 3; c++) {
              const lutBase = c * 256;
              const firstSlot = rowBase + c * T * P * P;
              for (let dy = 0; dy < P; dy++) {
                let src = (y0 + dy) * stride + x0 * 3 + c;
                const dst = firstSlot + dy * P;
                for (let dx = 0; dx < P; dx++, src += 3) out[dst + dx] = lut[lutBase + rgb[src]];
              }
              // Temporal duplication: slots 1..T-1 repeat slot 0.
              for (let t = 1; t < T; t++) out.copyWithin(firstSlot + t * P * P, firstSlot, firstSlot + P * P);
            }
            row++;
          }
        }
      }
    }
    return out;
  }
}

/**
 * Every uint8 value's final float32, computed in HF's operation order: `u * rescale_factor` in float64
 * cast to float32, then `(x - mean) / std` in float32 with float32 mean and std.
 */
function buildLut(o: Qwen2VLImageProcessorOptions): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(o.imageMean[c]);
    const std = Math.fround(o.imageStd[c]);
    for (let u = 0; u < 256; u++) {
      let x = o.doRescale ? Math.fround(u * o.rescaleFactor) : u;
      // float32 subtraction and division: an exact double result rounded once to float32 is the IEEE
      // float32 result (double has more than 2*24+2 bits).
      if (o.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      lut[c * 256 + u] = x;
    }
  }
  return lut;
}
