// Images of dataset rows: where each sample came from, and decoding its image on demand.
import { readFile } from 'node:fs/promises';
import type { R1VSample, RgbImage } from '../schema.js';
import { formatLocation, type RowLocation } from './errors.js';
import { resolveInside } from './paths.js';

/** Encoded image bytes (PNG / JPEG / WebP ...) -> RGB pixels. */
export type ImageDecoder = (bytes: Uint8Array) => RgbImage | Promise<RgbImage>;

/** PIL's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`), our default cap on decoded pixels. */
export const DEFAULT_MAX_IMAGE_PIXELS = 89_478_485;
/** Default cap on the encoded size of one image. */
export const DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024;

/** Where a sample was read from: its row, and the folder its image path is relative to. */
export interface SampleSource extends RowLocation {
  root: string;
}

const sources = new WeakMap<object, SampleSource>();

/** Records where `sample` came from (the readers call this for every sample they return). */
export function setSampleSource(sample: R1VSample, source: SampleSource): void {
  sources.set(sample, source);
}

/** Where a sample read by `loadDataset` / the readers came from; survives shuffling and subsampling. */
export function sampleSource(sample: R1VSample): SampleSource | undefined {
  return sources.get(sample);
}

let defaultDecoder: Promise<ImageDecoder> | undefined;

/**
 * The image module's `decodeImage` (`../image/index.js`), imported on first use so that the text and
 * dataset code loads without it. Pass a `decoder` option instead to use any other decoder.
 */
export function defaultImageDecoder(): Promise<ImageDecoder> {
  defaultDecoder ??= (async () => {
    const specifier = '../image/index.js'; // kept in a variable: the module belongs to the image half of the package
    let mod: { decodeImage?: unknown };
    try {
      mod = (await import(specifier)) as { decodeImage?: unknown };
    } catch (err) {
      throw new Error(
        `no image decoder: pass the "decoder" option (${specifier} did not load: ${(err as Error).message})`,
      );
    }
    if (typeof mod.decodeImage !== 'function') {
      throw new Error(`no image decoder: pass the "decoder" option (${specifier} exports no decodeImage)`);
    }
    return mod.decodeImage as ImageDecoder;
  })();
  defaultDecoder.catch(() => {
    defaultDecoder = undefined; // let a later call retry
  });
  return defaultDecoder;
}

export interface LoadImageOptions {
  decoder?: ImageDecoder;
  /** Folder a string `image` path is relative to; defaults to the sample's recorded source folder. */
  root?: string;
  maxImageBytes?: number;
  maxImagePixels?: number;
}

function where(sample: R1VSample): string {
  const src = sources.get(sample);
  return src ? `${formatLocation(src)}: ` : '';
}

/** The encoded bytes of a sample's image (read from disk for a path, inside the dataset folder only). */
export async function readSampleImageBytes(
  sample: R1VSample,
  options: LoadImageOptions = {},
): Promise<Uint8Array> {
  const image = sample.image;
  if (image instanceof Uint8Array) return image;
  if (typeof image !== 'string') throw new Error(`${where(sample)}field "image" is neither a path nor bytes`);
  const root = options.root ?? sources.get(sample)?.root;
  if (root === undefined)
    throw new Error(`image path ${JSON.stringify(image)}: no dataset folder known; pass "root"`);
  let path: string;
  try {
    path = resolveInside(root, image);
  } catch (err) {
    throw new Error(`${where(sample)}field "image": ${(err as Error).message}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`${where(sample)}field "image": cannot read ${path}: ${(err as Error).message}`);
  }
  const maxBytes = options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  if (bytes.length > maxBytes) {
    throw new Error(
      `${where(sample)}field "image": ${path} has ${bytes.length} bytes, over the limit of ${maxBytes}`,
    );
  }
  return bytes;
}

/** Checks a decoded image's shape and size; returns the problem or undefined. */
export function imageProblem(image: RgbImage, maxImagePixels: number): string | undefined {
  if (
    !image ||
    !Number.isInteger(image.width) ||
    !Number.isInteger(image.height) ||
    image.width < 1 ||
    image.height < 1
  ) {
    return 'decoder returned no valid width / height';
  }
  if (image.width * image.height > maxImagePixels) {
    return `image is ${image.width}x${image.height} = ${image.width * image.height} pixels, over the limit of ${maxImagePixels}`;
  }
  if (!(image.data instanceof Uint8Array) || image.data.length !== image.width * image.height * 3) {
    return `decoder returned ${image.data?.length} bytes of pixels for ${image.width}x${image.height}x3`;
  }
  return undefined;
}

/** Decodes a sample's image; errors name the sample's file and row. */
export async function loadSampleImage(sample: R1VSample, options: LoadImageOptions = {}): Promise<RgbImage> {
  const bytes = await readSampleImageBytes(sample, options);
  const decode = options.decoder ?? (await defaultImageDecoder());
  let image: RgbImage;
  try {
    image = await decode(bytes);
  } catch (err) {
    throw new Error(`${where(sample)}field "image": cannot decode the image: ${(err as Error).message}`);
  }
  const problem = imageProblem(image, options.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS);
  if (problem) throw new Error(`${where(sample)}field "image": ${problem}`);
  return image;
}
