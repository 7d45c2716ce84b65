// Decode PNG / JPEG / WebP with sharp into the RGB pixels PIL gives for `Image.open(f).convert('RGB')`,
// which is what transformers' `convert_to_rgb` does for the Qwen2-VL processor.
//
// Alpha: transformers' generic `image_transforms.convert_to_rgb` (imported by the Qwen2-VL image
// processor, slow and fast) returns `image.convert("RGB")` for a non-RGB PIL image, and PIL's
// RGBA -> RGB conversion DROPS alpha (the colour under a transparent pixel survives). Compositing
// over white is what the Idefics2 / Mllama copies of `convert_to_rgb` do, not Qwen2-VL's; the
// fixtures' README §3 also states `convert('RGB')`. So `alpha: 'drop'` is the default, and
// `alpha: 'white'` reproduces PIL's `Image.alpha_composite(white, im.convert('RGBA')).convert('RGB')`.
//
// Other PIL conversions reproduced bit for bit (checked against Pillow 9.4 in the tests):
// - grayscale (1, 2, 4, 8 bit), palette (with or without tRNS): values replicated / looked up;
// - 16-bit RGB(A) and 16-bit gray+alpha PNG: PIL keeps the high byte;
// - 16-bit gray PNG: PIL opens it as mode "I" and `convert('RGB')` CLAMPS each value to 0..255
//   (it does not scale: values >= 255 become white). Reproduced because HF sees the same pixels;
// - CMYK JPEG: PIL's naive `cmyk2rgb` (no ICC); sharp would apply a CMYK profile instead.
// Embedded ICC profiles and EXIF orientation are ignored, as PIL does.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { RgbImage } from '../schema.js';

export type AlphaMode = 'drop' | 'white';

export interface DecodeOptions {
  /** What to do with transparency: `'drop'` (PIL `convert('RGB')`, HF Qwen2-VL; default) or `'white'`. */
  alpha?: AlphaMode;
  /** Name used in error messages when decoding bytes (a path argument names itself). */
  name?: string;
}

export type ImageFormat = 'png' | 'jpeg' | 'webp';

/** The container format from the magic bytes, or undefined. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const at = (i: number, ...values: number[]) => values.every((v, k) => bytes[i + k] === v);
  if (bytes.length >= 8 && at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (bytes.length >= 3 && at(0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (bytes.length >= 12 && at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'webp';
  return undefined;
}

/** Decoded samples before the conversion to RGB. */
interface RawPixels {
  data: Uint8Array | Uint16Array;
  width: number;
  height: number;
  channels: number;
  space: string;
}

async function decodeRaw(bytes: Uint8Array, name: string, format: ImageFormat): Promise<RawPixels> {
  const options = { ignoreIcc: true, failOn: 'error' as const };
  try {
    const meta = await sharp(bytes, options).metadata();
    const space = meta.space ?? 'srgb';
    let pipeline = sharp(bytes, options);
    let depth: 'uchar' | 'ushort' = 'uchar';
    // Keep the stored samples: without these, libvips converts 16-bit and CMYK images through its
    // colour-managed sRGB path, which is not what PIL does.
    if (space === 'cmyk') pipeline = pipeline.pipelineColourspace('cmyk').toColourspace('cmyk');
    else if (space === 'grey16' || space === 'rgb16') {
      pipeline = pipeline.pipelineColourspace(space).toColourspace(space);
      depth = 'ushort';
    } else if (space !== 'srgb' && space !== 'b-w') {
      throw new Error(`unsupported colour space ${space}`);
    }
    const { data, info } = await pipeline.raw({ depth }).toBuffer({ resolveWithObject: true });
    const samples =
      depth === 'ushort'
        ? new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return { data: samples, width: info.width, height: info.height, channels: info.channels, space };
  } catch (e) {
    throw new Error(`${name}: cannot decode ${format.toUpperCase()} image: ${(e as Error).message}`);
  }
}

/** `(a * b) / 255` rounded, Pillow's MULDIV255. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * Pillow's `AlphaComposite.c` for an opaque white destination: out = src*a + 255*(1-a) with its
 * 7-bit-precision integer rounding.
 */
function compositeOverWhite(value: number, alpha: number): number {
  if (alpha === 0) return 255;
  const PRECISION = 7;
  const blend = 255 * (255 - alpha);
  const outA255 = alpha * 255 + blend;
  const coef1 = Math.floor((alpha * 255 * 255 * (1 << PRECISION)) / outA255);
  const coef2 = 255 * (1 << PRECISION) - coef1;
  const tmp = value * coef1 + 255 * coef2 + (0x80 << PRECISION);
  return (((tmp >> 8) + tmp) >> 8) >> PRECISION;
}

/** RGB + optional alpha per pixel (the PIL "RGBA" view) -> RgbImage. */
function toRgb(raw: RawPixels, alphaMode: AlphaMode): RgbImage {
  const { width, height, channels, space } = raw;
  const src = raw.data;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const sixteen = space === 'grey16' || space === 'rgb16';
  const gray = space === 'grey16' || (space === 'b-w' && channels <= 2);
  const hasAlpha = space !== 'cmyk' && (gray ? channels === 2 : channels === 4);
  // 8-bit sample of band k: PIL keeps the high byte of 16-bit samples, except that a 16-bit gray image
  // without alpha (mode "I") is clamped.
  const sample = (v: number) => (!sixteen ? v : gray && !hasAlpha ? Math.min(v, 255) : v >> 8);
  for (let i = 0; i < n; i++) {
    const p = i * channels;
    let r: number;
    let g: number;
    let b: number;
    if (space === 'cmyk') {
      // Pillow's cmyk2rgb: (255 - k) - c * (255 - k) / 255 per channel.
      const nk = 255 - src[p + 3];
      r = nk - mulDiv255(src[p], nk);
      g = nk - mulDiv255(src[p + 1], nk);
      b = nk - mulDiv255(src[p + 2], nk);
    } else if (gray) {
      r = g = b = sample(src[p]);
    } else {
      r = sample(src[p]);
      g = sample(src[p + 1]);
      b = sample(src[p + 2]);
    }
    if (hasAlpha && alphaMode === 'white') {
      const a = sample(src[p + channels - 1]);
      r = compositeOverWhite(r, a);
      g = compositeOverWhite(g, a);
      b = compositeOverWhite(b, a);
    }
    out[i * 3] = r;
    out[i * 3 + 1] = g;
    out[i * 3 + 2] = b;
  }
  return { width, height, data: out };
}

/**
 * Decode a PNG, JPEG or WebP file (path) or bytes into RGB, as PIL's `convert('RGB')` does (see the
 * file comment for alpha, 16-bit and CMYK handling).
 */
export async function decodeImage(
  input: Uint8Array | string,
  options: DecodeOptions = {},
): Promise<RgbImage> {
  const alphaMode = options.alpha ?? 'drop';
  if (alphaMode !== 'drop' && alphaMode !== 'white') {
    throw new Error(`decodeImage: alpha must be 'drop' or 'white', got ${JSON.stringify(alphaMode)}`);
  }
  let bytes: Uint8Array;
  let name: string;
  if (typeof input === 'string') {
    name = input;
    try {
      bytes = await readFile(input);
    } catch (e) {
      throw new Error(`cannot read image ${input}: ${(e as Error).message}`);
    }
  } else {
    name = options.name ?? `image bytes (${input.length} B)`;
    bytes = input;
  }
  const format = sniffImageFormat(bytes);
  if (!format) throw new Error(`${name}: not a PNG/JPEG/WebP image`);
  return toRgb(await decodeRaw(bytes, name, format), alphaMode);
}
