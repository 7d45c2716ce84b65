// A bit-exact port of Pillow's `Image.resize(size, BICUBIC)` for 8-bit RGB (libImaging/Resample.c):
// two separable passes, horizontal first, with the filter support widened by the downscale factor,
// coefficients rounded to 22-bit fixed point, and each pass rounded and clamped to uint8.
// sharp / libvips resize differently (up to 193 levels off when enlarging), so the model's resize is this.
import type { RgbImage } from '../schema.js';

/** Fixed-point precision of Pillow's 8-bit resampling coefficients: 32 - 8 - 2 bits. */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Keys' cubic convolution kernel with a = -0.5, as Pillow's `bicubic_filter` writes it. */
function bicubicFilter(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}
const BICUBIC_SUPPORT = 2;

/** Per output pixel: first input index, number of taps, and `ksize` int coefficients. */
interface Coefficients {
  ksize: number;
  starts: Int32Array;
  counts: Int32Array;
  weights: Int32Array;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the full box [0, inSize). */
function precomputeCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1.0 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubicFilter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0.0 ? k[x] / ww : k[x];
      // Round half away from zero, then truncate, like `(int)(w * (1 << 22) +- 0.5)`.
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    starts[xx] = xmin;
    counts[xx] = xmax;
  }
  return { ksize, starts, counts, weights };
}

/** Pillow's `clip8`: drop the fixed-point fraction (arithmetic shift) and clamp to 0..255. */
function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : Math.min(s, 255);
}

function resampleHorizontal(src: Uint8Array, width: number, height: number, outWidth: number): Uint8Array {
  const { ksize, starts, counts, weights } = precomputeCoefficients(width, outWidth);
  const out = new Uint8Array(outWidth * height * 3);
  const rowIn = width * 3;
  const rowOut = outWidth * 3;
  for (let y = 0; y < height; y++) {
    const inBase = y * rowIn;
    const outBase = y * rowOut;
    for (let xx = 0; xx < outWidth; xx++) {
      const kBase = xx * ksize;
      const n = counts[xx];
      let p = inBase + starts[xx] * 3;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let x = 0; x < n; x++, p += 3) {
        const w = weights[kBase + x];
        s0 += src[p] * w;
        s1 += src[p + 1] * w;
        s2 += src[p + 2] * w;
      }
      const o = outBase + xx * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

function resampleVertical(src: Uint8Array, width: number, height: number, outHeight: number): Uint8Array {
  const { ksize, starts, counts, weights } = precomputeCoefficients(height, outHeight);
  const rowBytes = width * 3;
  const out = new Uint8Array(rowBytes * outHeight);
  const acc = new Float64Array(rowBytes);
  for (let yy = 0; yy < outHeight; yy++) {
    const kBase = yy * ksize;
    const n = counts[yy];
    const first = starts[yy];
    acc.fill(HALF);
    // Row-major accumulation: the same integer sums as Pillow's per-pixel loop, in cache order.
    for (let y = 0; y < n; y++) {
      const w = weights[kBase + y];
      const rowBase = (first + y) * rowBytes;
      for (let i = 0; i < rowBytes; i++) acc[i] += src[rowBase + i] * w;
    }
    const outBase = yy * rowBytes;
    for (let i = 0; i < rowBytes; i++) out[outBase + i] = clip8(acc[i]);
  }
  return out;
}

/**
 * Resize an RGB image to `width x height` exactly like Pillow's `Image.resize((width, height),
 * Image.BICUBIC)` on a uint8 RGB image (Pillow 9.4 .. 11; reducing_gap None). Returns the input
 * unchanged when the size does not change.
 */
export function resizeBicubic(image: RgbImage, width: number, height: number): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`resizeBicubic: target size ${width}x${height} must be positive integers`);
  }
  if (image.data.length !== image.width * image.height * 3) {
    throw new Error(
      `resizeBicubic: image data has ${image.data.length} bytes, expected ${image.width}x${image.height}x3 = ${image.width * image.height * 3}`,
    );
  }
  let data = image.data;
  // Pillow skips a pass whose size does not change (need_horizontal / need_vertical).
  if (width !== image.width) data = resampleHorizontal(data, image.width, image.height, width);
  if (height !== image.height) data = resampleVertical(data, width, image.height, height);
  return data === image.data ? image : { width, height, data };
}
