// Qwen2-VL's `smart_resize` (transformers `image_processing_qwen2_vl.py`; spec §5.1): pick the size the
// image is resized to so that both sides are multiples of `factor` and the area lies in
// [minPixels, maxPixels], keeping the aspect ratio as well as possible.

export interface SmartResizeOptions {
  /** Both output sides are multiples of this: patch_size * merge_size = 28 for Qwen2-VL. */
  factor?: number;
  /** Smallest output area in pixels (preprocessor_config `min_pixels`, 3136 for Qwen2-VL-2B-Instruct). */
  minPixels?: number;
  /** Largest output area in pixels (preprocessor_config `max_pixels`, 12,845,056 for Qwen2-VL-2B-Instruct). */
  maxPixels?: number;
}

/** Largest max(h, w) / min(h, w) that HF's smart_resize accepts. */
export const MAX_ASPECT_RATIO = 200;

/** Python's `round(x)` for a float: ties go to the even integer (70/28 = 2.5 -> 2, 98/28 = 3.5 -> 4). */
export function roundHalfToEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The `[height, width]` an image of `height x width` is resized to. Throws, like HF, when a side is
 * shorter than `factor` or the aspect ratio exceeds 200, and (where HF would build an empty image)
 * when the limits leave a side of 0.
 */
export function smartResize(
  height: number,
  width: number,
  options: SmartResizeOptions = {},
): [number, number] {
  const factor = options.factor ?? 28;
  const minPixels = options.minPixels ?? 56 * 56;
  const maxPixels = options.maxPixels ?? 28 * 28 * 1280;
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new Error(`smart_resize: image size ${width}x${height} must be positive integers`);
  }
  if (!(minPixels > 0 && maxPixels >= minPixels)) {
    throw new Error(
      `smart_resize: need 0 < min_pixels <= max_pixels, got min_pixels=${minPixels}, max_pixels=${maxPixels}`,
    );
  }
  if (height < factor || width < factor) {
    throw new Error(
      `image ${width}x${height} is too small: both sides must be at least ${factor} pixels (patch_size * merge_size)`,
    );
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) {
    throw new Error(`image ${width}x${height} has aspect ratio ${ratio.toFixed(1)} > ${MAX_ASPECT_RATIO}`);
  }
  // The comparisons use the rounded size, beta uses the original size (spec §5.1 step 4).
  let hBar = roundHalfToEven(height / factor) * factor;
  let wBar = roundHalfToEven(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.floor(height / beta / factor) * factor;
    wBar = Math.floor(width / beta / factor) * factor;
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  if (hBar === 0 || wBar === 0) {
    throw new Error(
      `image ${width}x${height} cannot be resized to a multiple of ${factor} within max_pixels=${maxPixels} ` +
        `(a side would be 0); raise max_pixels or crop the image`,
    );
  }
  return [hBar, wBar];
}
