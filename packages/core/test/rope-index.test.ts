import { Fixture, fixtureCases, specialTokens } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { getRopeIndex } from '../src/model/rope-index.js';

const tokens = specialTokens();
const IMAGE = tokens.imagePad;
const VISION_START = tokens.visionStart;
// A text id for the synthetic sequences below (any id other than the two above).
const TEXT = tokens.textIds[7];

describe('getRopeIndex vs qwen2vl-tiny (exact)', () => {
  // Every case of the set that holds rope deltas (forward and generation cases).
  for (const name of fixtureCases('qwen2vl-tiny', { with: ['rope_deltas'] })) {
    it(name, () => {
      const f = new Fixture(`qwen2vl-tiny/${name}.safetensors`);
      const [B, S] = f.shape('input_ids');
      const out = getRopeIndex({
        inputIds: f.i32('input_ids'),
        batch: B,
        seqLen: S,
        attentionMask: f.i32('attention_mask'),
        imageGridThw: f.has('image_grid_thw') ? f.i32('image_grid_thw') : undefined,
        imageTokenId: IMAGE,
        visionStartTokenId: VISION_START,
        spatialMergeSize: 2,
      });
      if (f.has('position_ids'))
        expect(Array.from(out.positionIds)).toEqual(Array.from(f.i32('position_ids')));
      expect(Array.from(out.ropeDeltas)).toEqual(Array.from(f.i32('rope_deltas')));
    });
  }

  it("the spec's worked example: 31 tokens, one 4x6 image, delta -3", () => {
    const ids = new Int32Array(31).fill(TEXT);
    ids[14] = VISION_START;
    ids.fill(IMAGE, 15, 21);
    const out = getRopeIndex({
      inputIds: ids,
      batch: 1,
      seqLen: 31,
      imageGridThw: Int32Array.of(1, 4, 6),
      imageTokenId: IMAGE,
      visionStartTokenId: VISION_START,
      spatialMergeSize: 2,
    });
    expect(Array.from(out.positionIds.subarray(31 + 15, 31 + 21))).toEqual([15, 15, 15, 16, 16, 16]);
    expect(Array.from(out.positionIds.subarray(62 + 15, 62 + 21))).toEqual([15, 16, 17, 15, 16, 17]);
    expect(out.positionIds[21]).toBe(18);
    expect(out.ropeDeltas[0]).toBe(-3);
  });

  it('mismatched grids are errors', () => {
    const ids = Int32Array.of(VISION_START, IMAGE, IMAGE);
    expect(() =>
      getRopeIndex({
        inputIds: ids,
        batch: 1,
        seqLen: 3,
        imageTokenId: IMAGE,
        visionStartTokenId: VISION_START,
        spatialMergeSize: 2,
      }),
    ).toThrow(/more images than imageGridThw rows \(0\)/);
    expect(() =>
      getRopeIndex({
        inputIds: ids,
        batch: 1,
        seqLen: 3,
        imageGridThw: Int32Array.of(1, 4, 4, 1, 2, 2),
        imageTokenId: IMAGE,
        visionStartTokenId: VISION_START,
        spatialMergeSize: 2,
      }),
    ).toThrow(/image pads do not match imageGridThw/);
  });
});
