// get_rope_index of Hugging Face's Qwen2-VL (qwen2vl-spec.md section 3.6): 3-D (temporal, height,
// width) M-RoPE positions for text and image tokens, with left padding and the rope deltas that
// decoding with a KV cache continues from.

export interface RopeIndexInput {
  /** [B, S] token ids, row-major. */
  inputIds: Int32Array;
  batch: number;
  seqLen: number;
  /** [B, S] 1 = token, 0 = padding. Default: all ones. */
  attentionMask?: Int32Array;
  /** [images, 3] (t, h, w) in patches, in order of appearance over the batch. */
  imageGridThw?: Int32Array;
  imageTokenId: number;
  visionStartTokenId: number;
  spatialMergeSize: number;
}

export interface RopeIndex {
  /** [3, B, S]: temporal, height, width positions; padded slots are 1. */
  positionIds: Int32Array;
  /** [B]: max position + 1 - padded length (<= 0). */
  ropeDeltas: Int32Array;
}

export function getRopeIndex(input: RopeIndexInput): RopeIndex {
  const { inputIds, batch: B, seqLen: S, imageTokenId, visionStartTokenId, spatialMergeSize: merge } = input;
  if (inputIds.length !== B * S)
    throw new RangeError(`getRopeIndex: inputIds has ${inputIds.length} ids, not B * S = ${B} * ${S}`);
  const mask = input.attentionMask;
  if (mask && mask.length !== B * S)
    throw new RangeError(`getRopeIndex: attentionMask has ${mask.length} values, not ${B * S}`);
  const grids = input.imageGridThw ?? new Int32Array(0);
  const positionIds = new Int32Array(3 * B * S).fill(1);
  const ropeDeltas = new Int32Array(B);
  let image = 0;
  for (let b = 0; b < B; b++) {
    // The unpadded tokens of this row.
    const cols: number[] = [];
    for (let s = 0; s < S; s++) if (!mask || mask[b * S + s] === 1) cols.push(s);
    const tokens = cols.map((s) => inputIds[b * S + s]);
    const pos: [number, number, number][] = [];
    let next = 0; // max position so far + 1
    let st = 0;
    // Images: a <|vision_start|> followed by <|image_pad|>.
    let images = 0;
    for (let i = 0; i + 1 < tokens.length; i++)
      if (tokens[i] === visionStartTokenId && tokens[i + 1] === imageTokenId) images++;
    for (let k = 0; k < images; k++) {
      const ed = tokens.indexOf(imageTokenId, st);
      if (image >= grids.length / 3) {
        throw new RangeError(
          `getRopeIndex: row ${b} has more images than imageGridThw rows (${grids.length / 3})`,
        );
      }
      const [t, h, w] = [grids[image * 3], grids[image * 3 + 1] / merge, grids[image * 3 + 2] / merge];
      if (!Number.isInteger(h) || !Number.isInteger(w)) {
        throw new RangeError(
          `getRopeIndex: image ${image} grid [${grids.subarray(image * 3, image * 3 + 3).join(', ')}] is not divisible by the merge size ${merge}`,
        );
      }
      image++;
      for (let i = st; i < ed; i++, next++) pos.push([next, next, next]);
      const base = next;
      let maxPos = base - 1;
      for (let ti = 0; ti < t; ti++)
        for (let hi = 0; hi < h; hi++)
          for (let wi = 0; wi < w; wi++) {
            pos.push([base + ti, base + hi, base + wi]);
            maxPos = Math.max(maxPos, base + ti, base + hi, base + wi);
          }
      next = maxPos + 1;
      st = ed + t * h * w;
    }
    for (let i = st; i < tokens.length; i++, next++) pos.push([next, next, next]);
    if (pos.length !== tokens.length) {
      throw new RangeError(
        `getRopeIndex: row ${b} has ${tokens.length} tokens but its image pads do not match imageGridThw`,
      );
    }
    cols.forEach((s, i) => {
      for (let c = 0; c < 3; c++) positionIds[c * B * S + b * S + s] = pos[i][c];
    });
    ropeDeltas[b] = next - S;
  }
  if (image !== grids.length / 3) {
    throw new RangeError(
      `getRopeIndex: imageGridThw has ${grids.length / 3} rows but the ids hold ${image} images`,
    );
  }
  return { positionIds, ropeDeltas };
}
