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

/**
 * The coefficients with every output pixel padded to the same number of taps K (extra taps weigh 0
 * and point at a valid input), so that the common K <= 5 case runs as straight-line code. The sums
 * are the same integers as Pillow's.
 */
interface Taps {
  k: number;
  index: Int32Array;
  weight: Int32Array;
}

function paddedTaps(inSize: number, outSize: number): Taps {
  const { ksize, starts, counts, weights } = precomputeCoefficients(inSize, outSize);
  let k = 0;
  for (let i = 0; i < outSize; i++) k = Math.max(k, counts[i]);
  k = Math.max(k, 5);
  const index = new Int32Array(outSize * k);
  const weight = new Int32Array(outSize * k);
  for (let i = 0; i < outSize; i++) {
    for (let t = 0; t < k; t++) {
      const real = t < counts[i];
      index[i * k + t] = starts[i] + (real ? t : 0);
      weight[i * k + t] = real ? weights[i * ksize + t] : 0;
    }
  }
  return { k, index, weight };
}

function resampleHorizontal(src: Uint8Array, width: number, height: number, outWidth: number): Uint8Array {
  const { k, index, weight } = paddedTaps(width, outWidth);
  // Byte offsets of the taps inside a row.
  const offset = index.map((i) => i * 3);
  const out = new Uint8Array(outWidth * height * 3);
  const rowIn = width * 3;
  for (let y = 0; y < height; y++) {
    const row = src.subarray(y * rowIn, (y + 1) * rowIn);
    let o = y * outWidth * 3;
    if (k === 5) {
      for (let t = 0; t < outWidth * 5; t += 5, o += 3) {
        const p0 = offset[t];
        const p1 = offset[t + 1];
        const p2 = offset[t + 2];
        const p3 = offset[t + 3];
        const p4 = offset[t + 4];
        const w0 = weight[t];
        const w1 = weight[t + 1];
        const w2 = weight[t + 2];
        const w3 = weight[t + 3];
        const w4 = weight[t + 4];
        out[o] = clip8(HALF + row[p0] * w0 + row[p1] * w1 + row[p2] * w2 + row[p3] * w3 + row[p4] * w4);
        out[o + 1] = clip8(
          HALF + row[p0 + 1] * w0 + row[p1 + 1] * w1 + row[p2 + 1] * w2 + row[p3 + 1] * w3 + row[p4 + 1] * w4,
        );
        out[o + 2] = clip8(
          HALF + row[p0 + 2] * w0 + row[p1 + 2] * w1 + row[p2 + 2] * w2 + row[p3 + 2] * w3 + row[p4 + 2] * w4,
        );
      }
      continue;
    }
    for (let t = 0; t < outWidth * k; t += k, o += 3) {
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let j = 0; j < k; j++) {
        const p = offset[t + j];
        const w = weight[t + j];
        s0 += row[p] * w;
        s1 += row[p + 1] * w;
        s2 += row[p + 2] * w;
      }
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

function resampleVertical(src: Uint8Array, width: number, height: number, outHeight: number): Uint8Array {
  const { k, index, weight } = paddedTaps(height, outHeight);
  const rowBytes = width * 3;
  const out = new Uint8Array(rowBytes * outHeight);
  const acc = k === 5 ? new Int32Array(0) : new Int32Array(rowBytes);
  for (let yy = 0; yy < outHeight; yy++) {
    const t = yy * k;
    const ob = yy * rowBytes;
    if (k === 5) {
      const r0 = index[t] * rowBytes;
      const r1 = index[t + 1] * rowBytes;
      const r2 = index[t + 2] * rowBytes;
      const r3 = index[t + 3] * rowBytes;
      const r4 = index[t + 4] * rowBytes;
      const w0 = weight[t];
      const w1 = weight[t + 1];
      const w2 = weight[t + 2];
      const w3 = weight[t + 3];
      const w4 = weight[t + 4];
      for (let i = 0; i < rowBytes; i++) {
        out[ob + i] = clip8(
          HALF + src[r0 + i] * w0 + src[r1 + i] * w1 + src[r2 + i] * w2 + src[r3 + i] * w3 + src[r4 + i] * w4,
        );
      }
      continue;
    }
    // Wide (downscaling) filters: accumulate whole rows, two taps per pass. Partial sums stay within
    // int32 as Pillow's do.
    acc.fill(HALF);
    let j = 0;
    for (; j + 1 < k; j += 2) {
      const r0 = index[t + j] * rowBytes;
      const r1 = index[t + j + 1] * rowBytes;
      const w0 = weight[t + j];
      const w1 = weight[t + j + 1];
      for (let i = 0; i < rowBytes; i++) acc[i] += src[r0 + i] * w0 + src[r1 + i] * w1;
    }
    if (j < k) {
      const r0 = index[t + j] * rowBytes;
      const w0 = weight[t + j];
      for (let i = 0; i < rowBytes; i++) acc[i] += src[r0 + i] * w0;
    }
    for (let i = 0; i < rowBytes; i++) out[ob + i] = clip8(acc[i]);
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
