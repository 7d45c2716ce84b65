// Collators: prompt batches for generation (left-padded), SFT batches, and GRPO's G-fold repeat.
import type { ProcessedImage } from '../schema.js';
import { checkProcessedImage } from './image-processor.js';
import { IGNORE_INDEX } from './labels.js';
import type { EncodedPrompt, EncodedSft } from './qwen2vl-processor.js';

/** The ids a collator needs; a `Qwen2Tokenizer` has both. */
export interface CollateTokens {
  padTokenId: number;
  imagePadId: number;
}

/** Images of a batch, concatenated in row order (HF `pixel_values` / `image_grid_thw`). */
export interface ImageBatch {
  /** `[sum of t*h*w over images, patchDim]` row-major. */
  pixelValues: Float32Array;
  /** `[numImages, 3]`: t, h, w in patches. */
  imageGridThw: Int32Array;
  /** Columns of `pixelValues` (3 * 2 * 14 * 14 = 1176 for Qwen2-VL; 0 when there are no images). */
  patchDim: number;
  /** `[B]`: how many of the images belong to each row, in order. */
  imagesPerRow: Int32Array;
}

export interface PromptBatch extends ImageBatch {
  batchSize: number;
  seqLen: number;
  /** `[B, S]` row-major, left-padded with the pad id. */
  inputIds: Int32Array;
  /** `[B, S]`: 1 on tokens, 0 on padding. */
  attentionMask: Int32Array;
  /** `[B]`: real (unpadded) tokens per row; row b starts at column `S - promptLengths[b]`. */
  promptLengths: Int32Array;
}

export interface SftBatch extends ImageBatch {
  batchSize: number;
  seqLen: number;
  inputIds: Int32Array;
  attentionMask: Int32Array;
  /** `[B, S]`: token ids on the assistant answers, IGNORE_INDEX (-100) elsewhere and on padding. */
  labels: Int32Array;
}

function collateImages(rows: readonly (readonly ProcessedImage[])[]): ImageBatch {
  let patchDim = 0;
  let total = 0;
  let count = 0;
  for (const [b, images] of rows.entries()) {
    for (const [k, im] of images.entries()) {
      const dim = checkProcessedImage(im, `row ${b} image ${k}`);
      if (patchDim !== 0 && dim !== patchDim) {
        throw new Error(
          `row ${b} image ${k}: pixelValues has ${dim} columns; earlier images have ${patchDim}`,
        );
      }
      patchDim = dim;
      total += im.pixelValues.length;
      count++;
    }
  }
  const pixelValues = new Float32Array(total);
  const imageGridThw = new Int32Array(count * 3);
  const imagesPerRow = new Int32Array(rows.length);
  let offset = 0;
  let n = 0;
  rows.forEach((images, b) => {
    imagesPerRow[b] = images.length;
    for (const im of images) {
      pixelValues.set(im.pixelValues, offset);
      offset += im.pixelValues.length;
      imageGridThw.set(im.gridThw, 3 * n++);
    }
  });
  return { pixelValues, imageGridThw, patchDim, imagesPerRow };
}

function countPads(ids: Int32Array, imagePadId: number, from = 0, to = ids.length): number {
  let n = 0;
  for (let i = from; i < to; i++) if (ids[i] === imagePadId) n++;
  return n;
}

function checkPadsMatchImages(item: EncodedPrompt, b: number, tokens: CollateTokens): void {
  const pads = countPads(item.inputIds, tokens.imagePadId);
  const expected = item.images.reduce((n, im) => n + im.numImageTokens, 0);
  if (pads !== expected) {
    throw new Error(`row ${b}: ${pads} <|image_pad|> tokens but its images take ${expected}`);
  }
}

export interface CollatePromptsOptions {
  /** Keep only the last this-many tokens of a longer prompt (TRL `max_prompt_length`, left truncation). */
  maxPromptLength?: number;
}

/**
 * Left-pads prompts into one batch (generation appends on the right; qwen2vl-spec §6.2). Truncation
 * (`maxPromptLength`) drops tokens from the left, as TRL does, and throws rather than cut image tokens.
 */
export function collatePrompts(
  items: readonly EncodedPrompt[],
  tokens: CollateTokens,
  options: CollatePromptsOptions = {},
): PromptBatch {
  if (items.length === 0) throw new Error('collatePrompts: no prompts');
  const max = options.maxPromptLength;
  if (max !== undefined && !(Number.isInteger(max) && max > 0)) {
    throw new Error(`maxPromptLength must be a positive integer, got ${max}`);
  }
  const rows = items.map((item, b) => {
    checkPadsMatchImages(item, b, tokens);
    const ids = item.inputIds;
    if (max === undefined || ids.length <= max) return ids;
    if (countPads(ids, tokens.imagePadId, 0, ids.length - max) > 0) {
      throw new Error(
        `row ${b}: truncating its ${ids.length} tokens to maxPromptLength ${max} would cut image tokens`,
      );
    }
    return ids.subarray(ids.length - max);
  });
  const B = rows.length;
  const S = Math.max(...rows.map((r) => r.length));
  const inputIds = new Int32Array(B * S).fill(tokens.padTokenId);
  const attentionMask = new Int32Array(B * S);
  const promptLengths = new Int32Array(B);
  rows.forEach((ids, b) => {
    const start = b * S + (S - ids.length);
    inputIds.set(ids, start);
    attentionMask.fill(1, start, (b + 1) * S);
    promptLengths[b] = ids.length;
  });
  return {
    batchSize: B,
    seqLen: S,
    inputIds,
    attentionMask,
    promptLengths,
    ...collateImages(items.map((i) => i.images)),
  };
}

export interface CollateSftOptions {
  /** Keep only the first this-many tokens (right truncation); throws rather than cut image tokens. */
  maxLength?: number;
  /** Default `right`, the training convention (TRL SFT); labels are IGNORE_INDEX on padding either way. */
  paddingSide?: 'left' | 'right';
}

/** Pads SFT conversations into one batch with labels (IGNORE_INDEX on padding). */
export function collateSft(
  items: readonly EncodedSft[],
  tokens: CollateTokens,
  options: CollateSftOptions = {},
): SftBatch {
  if (items.length === 0) throw new Error('collateSft: no examples');
  const max = options.maxLength;
  if (max !== undefined && !(Number.isInteger(max) && max > 0))
    throw new Error(`maxLength must be a positive integer, got ${max}`);
  const side = options.paddingSide ?? 'right';
  if (side !== 'left' && side !== 'right')
    throw new Error(`paddingSide must be "left" or "right", got ${JSON.stringify(side)}`);
  const rows = items.map((item, b) => {
    if (item.labels.length !== item.inputIds.length) {
      throw new Error(`row ${b}: ${item.labels.length} labels for ${item.inputIds.length} tokens`);
    }
    checkPadsMatchImages(item, b, tokens);
    let ids = item.inputIds;
    let labels = item.labels;
    if (max !== undefined && ids.length > max) {
      if (countPads(ids, tokens.imagePadId, max) > 0) {
        throw new Error(
          `row ${b}: truncating its ${ids.length} tokens to maxLength ${max} would cut image tokens`,
        );
      }
      ids = ids.subarray(0, max);
      labels = labels.subarray(0, max);
    }
    if (!labels.some((l) => l !== IGNORE_INDEX)) {
      throw new Error(
        `row ${b}: no answer tokens to learn${ids.length < item.inputIds.length ? ` after truncation to maxLength ${max}` : ''}`,
      );
    }
    return { ids, labels };
  });
  const B = rows.length;
  const S = Math.max(...rows.map((r) => r.ids.length));
  const inputIds = new Int32Array(B * S).fill(tokens.padTokenId);
  const attentionMask = new Int32Array(B * S);
  const labels = new Int32Array(B * S).fill(IGNORE_INDEX);
  rows.forEach(({ ids, labels: l }, b) => {
    const start = b * S + (side === 'left' ? S - ids.length : 0);
    inputIds.set(ids, start);
    labels.set(l, start);
    attentionMask.fill(1, start, start + ids.length);
  });
  return {
    batchSize: B,
    seqLen: S,
    inputIds,
    attentionMask,
    labels,
    ...collateImages(items.map((i) => i.images)),
  };
}

/**
 * Each prompt row repeated G times in a row (rows b*G .. b*G+G-1 are prompt b), as TRL's GRPO with
 * `num_return_sequences = G`; `imageGridThw` is repeat_interleave'd and each prompt's block of
 * `pixelValues` is repeated G times with it. For one prompt per batch (R1-V's setting) this equals
 * R1-V's `pixel_values.repeat(G, 1)`; for several it keeps image k aligned with the k-th pad run,
 * where R1-V's `repeat` would interleave the prompts' images (its known batched-training bug).
 */
export function repeatForGenerations(batch: PromptBatch, G: number): PromptBatch {
  if (!Number.isInteger(G) || G < 1)
    throw new Error(`number of generations must be a positive integer, got ${G}`);
  const { batchSize: B, seqLen: S, patchDim } = batch;
  const inputIds = new Int32Array(B * G * S);
  const attentionMask = new Int32Array(B * G * S);
  const promptLengths = new Int32Array(B * G);
  const imagesPerRow = new Int32Array(B * G);
  const pixelValues = new Float32Array(batch.pixelValues.length * G);
  const imageGridThw = new Int32Array(batch.imageGridThw.length * G);
  let image = 0; // first image of prompt b
  let pixel = 0; // first pixelValues element of prompt b
  let outPixel = 0;
  let outImage = 0;
  for (let b = 0; b < B; b++) {
    const nImages = batch.imagesPerRow[b];
    let nPixels = 0;
    for (let k = image; k < image + nImages; k++) {
      const g3 = batch.imageGridThw.subarray(3 * k, 3 * k + 3);
      nPixels += g3[0] * g3[1] * g3[2] * patchDim;
    }
    const ids = batch.inputIds.subarray(b * S, (b + 1) * S);
    const mask = batch.attentionMask.subarray(b * S, (b + 1) * S);
    const grid = batch.imageGridThw.subarray(3 * image, 3 * (image + nImages));
    const pixels = batch.pixelValues.subarray(pixel, pixel + nPixels);
    for (let g = 0; g < G; g++) {
      const r = b * G + g;
      inputIds.set(ids, r * S);
      attentionMask.set(mask, r * S);
      promptLengths[r] = batch.promptLengths[b];
      imagesPerRow[r] = nImages;
      imageGridThw.set(grid, 3 * outImage);
      outImage += nImages;
      pixelValues.set(pixels, outPixel);
      outPixel += nPixels;
    }
    image += nImages;
    pixel += nPixels;
  }
  if (pixel !== batch.pixelValues.length) {
    throw new Error(
      `batch pixelValues has ${batch.pixelValues.length} values but its grids account for ${pixel}`,
    );
  }
  return {
    batchSize: B * G,
    seqLen: S,
    inputIds,
    attentionMask,
    promptLengths,
    pixelValues,
    imageGridThw,
    patchDim,
    imagesPerRow,
  };
}
