// What the text processor needs from an image processor; the Qwen2-VL one lives in ../image.
import type { ProcessedImage, RgbImage } from '../schema.js';

/** Anything that turns RGB pixels into Qwen2-VL patches (e.g. the image module's `Qwen2VLImageProcessor`). */
export interface ImageProcessorLike {
  process(image: RgbImage): ProcessedImage;
}

/** True for an already processed image (so callers can pass cached patches instead of pixels). */
export function isProcessedImage(image: RgbImage | ProcessedImage): image is ProcessedImage {
  return (image as ProcessedImage).pixelValues instanceof Float32Array;
}

/**
 * Checks the invariants the collators rely on: a positive integer grid, `numImageTokens` equal to
 * `t*h*w / merge^2`, and `pixelValues` of `t*h*w` rows; returns the row width (1176 for Qwen2-VL).
 */
export function checkProcessedImage(image: ProcessedImage, name: string, mergeSize = 2): number {
  const [t, h, w] = image.gridThw;
  if (![t, h, w].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(`${name}: gridThw ${JSON.stringify(image.gridThw)} must be three positive integers`);
  }
  const patches = t * h * w;
  if (image.numImageTokens * mergeSize * mergeSize !== patches) {
    throw new Error(
      `${name}: numImageTokens ${image.numImageTokens} != t*h*w / merge^2 = ${t}*${h}*${w} / ${mergeSize}^2`,
    );
  }
  const dim = image.pixelValues.length / patches;
  if (!Number.isInteger(dim) || dim === 0) {
    throw new Error(
      `${name}: pixelValues has ${image.pixelValues.length} values, not a multiple of ${patches} patches`,
    );
  }
  return dim;
}
