// Row selection on collated batches: the G-fold repeat of GRPO and micro-batches both pick rows
// (with their images) out of a batch.
import type { Qwen2VLInputs } from '../model/qwen2vl.js';
import type { PromptBatchLike } from './types.js';

export interface RowBatch extends PromptBatchLike {
  labels?: Int32Array;
}

/** A batch made of the given rows of `batch` (repeats allowed), each with its own images. */
export function selectRows<B extends RowBatch>(batch: B, rows: number[]): B {
  const { seqLen: s, patchDim } = batch;
  // First image and first patch row of every source row.
  const firstImage: number[] = [];
  const firstPatch: number[] = [];
  let image = 0;
  let patch = 0;
  for (let r = 0; r < batch.batchSize; r++) {
    firstImage.push(image);
    firstPatch.push(patch);
    for (let k = 0; k < batch.imagesPerRow[r]; k++, image++) {
      patch +=
        batch.imageGridThw[image * 3] * batch.imageGridThw[image * 3 + 1] * batch.imageGridThw[image * 3 + 2];
    }
  }
  firstImage.push(image);
  firstPatch.push(patch);
  const inputIds = new Int32Array(rows.length * s);
  const attentionMask = new Int32Array(rows.length * s);
  const labels = batch.labels ? new Int32Array(rows.length * s) : undefined;
  const imagesPerRow = new Int32Array(rows.length);
  const grids: number[] = [];
  const pixelParts: Float32Array[] = [];
  rows.forEach((r, i) => {
    inputIds.set(batch.inputIds.subarray(r * s, (r + 1) * s), i * s);
    attentionMask.set(batch.attentionMask.subarray(r * s, (r + 1) * s), i * s);
    labels?.set(batch.labels!.subarray(r * s, (r + 1) * s), i * s);
    imagesPerRow[i] = batch.imagesPerRow[r];
    grids.push(...batch.imageGridThw.subarray(firstImage[r] * 3, firstImage[r + 1] * 3));
    pixelParts.push(batch.pixelValues.subarray(firstPatch[r] * patchDim, firstPatch[r + 1] * patchDim));
  });
  const pixelValues = new Float32Array(pixelParts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of pixelParts) {
    pixelValues.set(p, offset);
    offset += p.length;
  }
  return {
    ...batch,
    batchSize: rows.length,
    inputIds,
    attentionMask,
    labels,
    imagesPerRow,
    imageGridThw: Int32Array.from(grids),
    pixelValues,
  };
}

/**
 * Model inputs of a batch, as host arrays: the model uploads them to its device once per forward
 * (pixel values only when there are images).
 */
export function modelInputs(batch: PromptBatchLike): Qwen2VLInputs {
  const patches = batch.patchDim > 0 ? batch.pixelValues.length / batch.patchDim : 0;
  return {
    batch: batch.batchSize,
    seqLen: batch.seqLen,
    inputIds: batch.inputIds,
    attentionMask: batch.attentionMask,
    pixelValues: patches > 0 ? batch.pixelValues : undefined,
    imageGridThw: patches > 0 ? batch.imageGridThw : undefined,
  };
}
