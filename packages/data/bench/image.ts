// Images per second of the Qwen2-VL image processor (smart_resize + Pillow bicubic + normalize +
// patchify) on decoded RGB images, with Qwen2-VL-2B-Instruct's limits (min 3136, max 12,845,056).
// 224x224 and 448x448 are multiples of 28 (no resize); 1024x768 is resized to 1036x756.
// Run alone: `npx tsx packages/data/bench/image.ts`.
import { pathToFileURL } from 'node:url';
import { Qwen2VLImageProcessor } from '../src/image/index.js';
import type { RgbImage } from '../src/schema.js';

const SIZES: [number, number][] = [
  [224, 224],
  [448, 448],
  [1024, 768],
];

/** A deterministic, non-constant test image (xorshift noise over gradients). */
function testImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = 0x9e3779b9;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = (((i / 3) % width) + (s & 63)) & 255;
  }
  return { width, height, data };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median images / s over `rounds` timed rounds per size (`quick`: 3 short rounds, for smoke runs). */
export async function benchImageProcessor(
  options: { quick?: boolean; rounds?: number; roundSeconds?: number } = {},
): Promise<{ size: string; imagesPerSecond: number }[]> {
  const rounds = options.rounds ?? (options.quick ? 3 : 7);
  const roundSeconds = options.roundSeconds ?? (options.quick ? 0.1 : 0.25);
  const processor = new Qwen2VLImageProcessor({ minPixels: 3136, maxPixels: 12845056 });
  const results: { size: string; imagesPerSecond: number }[] = [];
  for (const [width, height] of SIZES) {
    const image = testImage(width, height);
    // Warm-up: let the JIT compile the hot loops for this size.
    for (let i = 0; i < 3; i++) processor.process(image);
    const rates: number[] = [];
    for (let r = 0; r < rounds; r++) {
      let n = 0;
      const start = process.hrtime.bigint();
      let elapsed = 0;
      while (elapsed < roundSeconds) {
        processor.process(image);
        n++;
        elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      }
      rates.push(n / elapsed);
    }
    results.push({ size: `${width}x${height}`, imagesPerSecond: median(rates) });
  }
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const { size, imagesPerSecond } of await benchImageProcessor()) {
    console.log(`image processor ${size.padEnd(9)} ${imagesPerSecond.toFixed(1)} images/s`);
  }
}
