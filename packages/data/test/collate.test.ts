import { fixturePath } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  collatePrompts,
  collateSft,
  type EncodedPrompt,
  type EncodedSft,
  IGNORE_INDEX,
  type PromptBatch,
  Qwen2VLProcessor,
  repeatForGenerations,
} from '../src/processor/index.js';
import { buildPromptMessages, loadTaskTokenizer, Qwen2Tokenizer } from '../src/text/index.js';
import { FakeImageProcessor, image, PATCH_DIM, processed } from './fake-image-processor.js';

// Hand-made ids: 0 = pad, 9 = <|image_pad|>.
const tokens = { padTokenId: 0, imagePadId: 9 };
const P = 9;
const X = IGNORE_INDEX;

function prompt(ids: number[], images = [] as ReturnType<typeof processed>[]): EncodedPrompt {
  return { inputIds: Int32Array.from(ids), images };
}

/** Row b of a [B, S] array. */
const rowOf = (a: Int32Array, S: number, b: number) => Array.from(a.subarray(b * S, (b + 1) * S));

/** For each image of the batch: the tag of its pixel block (all values equal in the fakes). */
function pixelTags(batch: {
  pixelValues: Float32Array;
  imageGridThw: Int32Array;
  patchDim: number;
}): number[] {
  const tags: number[] = [];
  let o = 0;
  for (let k = 0; k < batch.imageGridThw.length / 3; k++) {
    const rows = batch.imageGridThw[3 * k] * batch.imageGridThw[3 * k + 1] * batch.imageGridThw[3 * k + 2];
    const block = batch.pixelValues.subarray(o, o + rows * batch.patchDim);
    expect(block.every((v) => v === block[0])).toBe(true);
    tags.push(block[0]);
    o += rows * batch.patchDim;
  }
  expect(o).toBe(batch.pixelValues.length);
  return tags;
}

/** The image-pad runs of each row, in order, as their lengths. */
function padRuns(batch: PromptBatch, imagePadId: number): number[] {
  const runs: number[] = [];
  for (let b = 0; b < batch.batchSize; b++) {
    let run = 0;
    for (const id of rowOf(batch.inputIds, batch.seqLen, b)) {
      if (id === imagePadId) run++;
      else if (run > 0) {
        runs.push(run);
        run = 0;
      }
    }
    if (run > 0) runs.push(run);
  }
  return runs;
}

describe('collatePrompts', () => {
  it('left-pads, masks padding, and concatenates images in row order', () => {
    const batch = collatePrompts(
      [
        prompt([5, P, P, 6], [processed(2, 11)]),
        prompt([7, 8]),
        prompt([5, P, 6, P, P, P, 6], [processed(1, 12), processed(3, 13)]),
      ],
      tokens,
    );
    expect([batch.batchSize, batch.seqLen, batch.patchDim]).toEqual([3, 7, PATCH_DIM]);
    expect(rowOf(batch.inputIds, 7, 0)).toEqual([0, 0, 0, 5, P, P, 6]);
    expect(rowOf(batch.inputIds, 7, 1)).toEqual([0, 0, 0, 0, 0, 7, 8]);
    expect(rowOf(batch.inputIds, 7, 2)).toEqual([5, P, 6, P, P, P, 6]);
    expect(rowOf(batch.attentionMask, 7, 0)).toEqual([0, 0, 0, 1, 1, 1, 1]);
    expect(rowOf(batch.attentionMask, 7, 1)).toEqual([0, 0, 0, 0, 0, 1, 1]);
    expect(rowOf(batch.attentionMask, 7, 2)).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(batch.promptLengths)).toEqual([4, 2, 7]);
    expect(Array.from(batch.imageGridThw)).toEqual([1, 2, 4, 1, 2, 2, 1, 2, 6]);
    expect(Array.from(batch.imagesPerRow)).toEqual([1, 0, 2]);
    expect(batch.pixelValues.length).toBe((8 + 4 + 12) * PATCH_DIM);
    expect(pixelTags(batch)).toEqual([11, 12, 13]);
  });

  it('truncates from the left to maxPromptLength, and refuses to cut image tokens', () => {
    const batch = collatePrompts([prompt([1, 2, 3, 4, 5, P, 6], [processed(1, 1)]), prompt([7])], tokens, {
      maxPromptLength: 4,
    });
    expect(rowOf(batch.inputIds, 4, 0)).toEqual([4, 5, P, 6]);
    expect(rowOf(batch.inputIds, 4, 1)).toEqual([0, 0, 0, 7]);
    expect(Array.from(batch.promptLengths)).toEqual([4, 1]);
    expect(() =>
      collatePrompts([prompt([1, P, 2, 3], [processed(1, 1)])], tokens, { maxPromptLength: 2 }),
    ).toThrow('row 0: truncating its 4 tokens to maxPromptLength 2 would cut image tokens');
    expect(() => collatePrompts([prompt([1])], tokens, { maxPromptLength: 0 })).toThrow(
      'maxPromptLength must be a positive integer',
    );
  });

  it('checks pads against images and image widths against each other', () => {
    expect(() => collatePrompts([prompt([P, P, 1], [processed(1, 1)])], tokens)).toThrow(
      'row 0: 2 <|image_pad|> tokens but its images take 1',
    );
    const narrow = { ...processed(1, 1), pixelValues: new Float32Array(4 * 1175) };
    expect(() => collatePrompts([prompt([P], [processed(1, 1)]), prompt([P], [narrow])], tokens)).toThrow(
      'row 1 image 0: pixelValues has 1175 columns; earlier images have 1176',
    );
    expect(() => collatePrompts([], tokens)).toThrow('collatePrompts: no prompts');
  });
});

describe('collateSft', () => {
  const sft = (
    ids: number[],
    labels: number[],
    images = [] as ReturnType<typeof processed>[],
  ): EncodedSft => ({
    inputIds: Int32Array.from(ids),
    labels: Int32Array.from(labels),
    images,
  });

  it('right-pads by default with IGNORE_INDEX labels on padding', () => {
    const batch = collateSft(
      [sft([1, P, 2, 3, 4], [X, X, X, 3, 4], [processed(1, 5)]), sft([1, 2, 3], [X, 2, 3])],
      tokens,
    );
    expect([batch.batchSize, batch.seqLen]).toEqual([2, 5]);
    expect(rowOf(batch.inputIds, 5, 1)).toEqual([1, 2, 3, 0, 0]);
    expect(rowOf(batch.labels, 5, 0)).toEqual([X, X, X, 3, 4]);
    expect(rowOf(batch.labels, 5, 1)).toEqual([X, 2, 3, X, X]);
    expect(rowOf(batch.attentionMask, 5, 1)).toEqual([1, 1, 1, 0, 0]);
    expect(Array.from(batch.imageGridThw)).toEqual([1, 2, 2]);
    expect(Array.from(batch.imagesPerRow)).toEqual([1, 0]);
  });

  it('left-pads on request and truncates on the right to maxLength', () => {
    const left = collateSft([sft([1, 2, 3], [X, 2, 3]), sft([4], [4])], tokens, { paddingSide: 'left' });
    expect(rowOf(left.inputIds, 3, 1)).toEqual([0, 0, 4]);
    expect(rowOf(left.labels, 3, 1)).toEqual([X, X, 4]);
    expect(rowOf(left.attentionMask, 3, 1)).toEqual([0, 0, 1]);
    const cut = collateSft([sft([1, 2, 3, 4], [X, 2, 3, 4])], tokens, { maxLength: 3 });
    expect(rowOf(cut.labels, 3, 0)).toEqual([X, 2, 3]);
  });

  it('refuses rows with nothing to learn, mismatched labels, or cut images', () => {
    expect(() => collateSft([sft([1, 2, 3, 4], [X, X, X, 4])], tokens, { maxLength: 3 })).toThrow(
      'row 0: no answer tokens to learn after truncation to maxLength 3',
    );
    expect(() => collateSft([sft([1, 2], [X])], tokens)).toThrow('row 0: 1 labels for 2 tokens');
    expect(() =>
      collateSft([sft([1, 2, P, 4], [X, 2, X, 4], [processed(1, 1)])], tokens, { maxLength: 2 }),
    ).toThrow('would cut image tokens');
    expect(() => collateSft([sft([1], [1])], tokens, { paddingSide: 'middle' as never })).toThrow(
      'paddingSide must be "left" or "right", got "middle"',
    );
  });
});

describe('repeatForGenerations', () => {
  it('with one prompt it equals R1-V: rows repeated, pixel_values.repeat(G, 1), grid repeat_interleave(G)', () => {
    const batch = collatePrompts([prompt([5, P, P, P, 6], [processed(3, 4)])], tokens);
    const G = 4;
    const r = repeatForGenerations(batch, G);
    expect([r.batchSize, r.seqLen]).toEqual([4, 5]);
    for (let g = 0; g < G; g++) expect(rowOf(r.inputIds, 5, g)).toEqual([5, P, P, P, 6]);
    const tiled = new Float32Array(batch.pixelValues.length * G);
    for (let g = 0; g < G; g++) tiled.set(batch.pixelValues, g * batch.pixelValues.length);
    expect(r.pixelValues).toEqual(tiled);
    expect(Array.from(r.imageGridThw)).toEqual([1, 2, 6, 1, 2, 6, 1, 2, 6, 1, 2, 6]);
    expect(Array.from(r.promptLengths)).toEqual([5, 5, 5, 5]);
  });

  it("with several prompts keeps each image with its row (R1-V's repeat(G, 1) would not)", () => {
    const batch = collatePrompts(
      [
        prompt([P, 1], [processed(1, 21)]),
        prompt([2, 3]),
        prompt([P, P, 4, P], [processed(2, 22), processed(1, 23)]),
      ],
      tokens,
    );
    const G = 3;
    const r = repeatForGenerations(batch, G);
    expect(r.batchSize).toBe(9);
    for (let b = 0; b < 3; b++) {
      for (let g = 0; g < G; g++) {
        expect(rowOf(r.inputIds, r.seqLen, b * G + g)).toEqual(rowOf(batch.inputIds, batch.seqLen, b));
        expect(rowOf(r.attentionMask, r.seqLen, b * G + g)).toEqual(
          rowOf(batch.attentionMask, batch.seqLen, b),
        );
      }
    }
    expect(pixelTags(r)).toEqual([21, 21, 21, 22, 23, 22, 23, 22, 23]);
    expect(Array.from(r.imagesPerRow)).toEqual([1, 1, 1, 0, 0, 0, 2, 2, 2]);
    // the k-th pad run of the batch has the k-th image's token count (what the model's scatter needs)
    const gridTokens = [];
    for (let k = 0; k < r.imageGridThw.length / 3; k++)
      gridTokens.push((r.imageGridThw[3 * k + 1] * r.imageGridThw[3 * k + 2]) / 4);
    expect(padRuns(r, P)).toEqual(gridTokens);
    expect(() => repeatForGenerations(batch, 0)).toThrow(
      'number of generations must be a positive integer, got 0',
    );
  });

  it('end to end: R1-V prompts through the processor, collated and repeated, keep pads equal to image tokens', () => {
    for (const tokenizer of [Qwen2Tokenizer.fromFile(fixturePath('qwen2-tokenizer')), loadTaskTokenizer()]) {
      const processor = new Qwen2VLProcessor({ tokenizer, imageProcessor: new FakeImageProcessor() });
      const items = [
        processor.encodeMessages(
          buildPromptMessages('r1v-train', { problem: 'How many items are there in the image?' }),
          [image(56, 84, 1)],
        ),
        processor.encodeMessages(
          buildPromptMessages('r1v-train', { problem: 'What is the measure of angle CBD?' }),
          [image(28, 28, 2)],
        ),
      ];
      const batch = repeatForGenerations(collatePrompts(items, tokenizer), 8);
      expect(batch.batchSize).toBe(16);
      const pads = batch.inputIds.filter((id) => id === tokenizer.imagePadId).length;
      let patches = 0;
      for (let k = 0; k < batch.imageGridThw.length / 3; k++)
        patches += batch.imageGridThw[3 * k + 1] * batch.imageGridThw[3 * k + 2];
      expect(pads).toBe(patches / 4);
      expect(pads).toBe(8 * (6 + 1));
      expect(padRuns(batch, tokenizer.imagePadId)).toEqual([
        ...new Array(8).fill(6),
        ...new Array(8).fill(1),
      ]);
      // every row ends with the generation prompt and starts after its left padding
      for (let b = 0; b < 16; b++) {
        const row = rowOf(batch.inputIds, batch.seqLen, b);
        const start = batch.seqLen - batch.promptLengths[b];
        expect(row.slice(0, start).every((id) => id === tokenizer.padTokenId)).toBe(true);
        expect(row[start]).toBe(tokenizer.imStartId);
        expect(tokenizer.decode(row.slice(-3))).toBe('<|im_start|>assistant\n');
      }
    }
  });
});
