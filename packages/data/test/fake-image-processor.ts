// A stand-in for the Qwen2-VL image processor with a known token count, for processor / collator tests.
import type { ProcessedImage, RgbImage } from '../src/schema.js';

export const PATCH_DIM = 1176;

/**
 * Sides must be multiples of 28: grid [1, h/14, w/14], tokens (h/28)(w/28), every pixel value of the
 * image equal to `tag` (its first data byte) so tests can tell images apart in `pixelValues`.
 */
export class FakeImageProcessor {
  calls = 0;

  process(image: RgbImage): ProcessedImage {
    this.calls++;
    if (image.width % 28 !== 0 || image.height % 28 !== 0)
      throw new Error('fake processor: sides must be multiples of 28');
    const gridThw: [number, number, number] = [1, image.height / 14, image.width / 14];
    const patches = gridThw[1] * gridThw[2];
    return {
      pixelValues: new Float32Array(patches * PATCH_DIM).fill(image.data[0]),
      gridThw,
      numImageTokens: patches / 4,
    };
  }
}

/** An RGB image whose bytes are all `tag`. */
export function image(width: number, height: number, tag: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3).fill(tag) };
}

/** A processed image with `tokens` image tokens (grid [1, 2, 2 * tokens]) whose values are all `tag`. */
export function processed(tokens: number, tag: number): ProcessedImage {
  return {
    pixelValues: new Float32Array(4 * tokens * PATCH_DIM).fill(tag),
    gridThw: [1, 2, 2 * tokens],
    numImageTokens: tokens,
  };
}
