// The Qwen2-VL vision tower (spec section 2): patch embedding, ViT blocks with 2-D RoPE and
// attention segmented per image, and the PatchMerger that turns 2x2 patches into one LLM token.
import { checkpoint } from '../tensor/checkpoint.js';
import { gelu, quickGelu } from '../tensor/ops/activation.js';
import { add } from '../tensor/ops/arithmetic.js';
import { attention } from '../tensor/ops/attention.js';
import { linear } from '../tensor/ops/matmul.js';
import { layerNorm } from '../tensor/ops/norm.js';
import { rotary } from '../tensor/ops/rotary.js';
import { narrow } from '../tensor/ops/shape.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { QWEN2VL_NORM_EPS, type Qwen2VLVisionConfig } from './config.js';
import { visionRotaryCosSin } from './rope-tables.js';

/** LayerNorm eps of the vision blocks and the merger (hard-coded in HF, spec 1.2). */
const VISION_LN_EPS = QWEN2VL_NORM_EPS;

/** (hpos, wpos) of every patch in merge-window order (spec 2.3 / 2.4), [N, 2]. */
export function visionRotaryPositions(grids: Int32Array, merge: number): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < grids.length; i += 3) {
    const [t, h, w] = [grids[i], grids[i + 1], grids[i + 2]];
    for (let ti = 0; ti < t; ti++)
      for (let br = 0; br < h / merge; br++)
        for (let bc = 0; bc < w / merge; bc++)
          for (let ir = 0; ir < merge; ir++)
            for (let ic = 0; ic < merge; ic++) out.push(br * merge + ir, bc * merge + ic);
  }
  return Int32Array.from(out);
}

/** Segment boundaries of the per-image (per temporal slice) attention: [0, cumsum(h * w per slice)]. */
export function visionCuSeqlens(grids: Int32Array): Int32Array {
  const out = [0];
  for (let i = 0; i < grids.length; i += 3)
    for (let ti = 0; ti < grids[i]; ti++) out.push(out.at(-1)! + grids[i + 1] * grids[i + 2]);
  return Int32Array.from(out);
}

export class Qwen2VisionTransformer {
  constructor(
    readonly config: Qwen2VLVisionConfig,
    private readonly p: (name: string) => Tensor,
  ) {}

  /**
   * pixelValues [N, C*T*P*P] and grids [images * 3] -> image features [N / merge^2, hidden].
   * `gradientCheckpointing` recomputes each block in backward instead of keeping its activations.
   */
  forward(
    pixelValues: Tensor,
    imageGridThw: Int32Array,
    options: { gradientCheckpointing?: boolean } = {},
  ): Tensor {
    const c = this.config;
    const patchDim = c.inChannels * c.temporalPatchSize * c.patchSize * c.patchSize;
    const n = pixelValues.shape[0];
    if (pixelValues.rank !== 2 || pixelValues.shape[1] !== patchDim) {
      throw new RangeError(
        `pixelValues ${formatShape(pixelValues.shape)}: Qwen2-VL expects [patches, ${c.inChannels}*${c.temporalPatchSize}*${c.patchSize}*${c.patchSize} = ${patchDim}]`,
      );
    }
    let patches = 0;
    for (let i = 0; i < imageGridThw.length; i += 3)
      patches += imageGridThw[i] * imageGridThw[i + 1] * imageGridThw[i + 2];
    if (patches !== n)
      throw new RangeError(`pixelValues has ${n} patches but imageGridThw describes ${patches}`);
    // Conv3d with kernel == stride is a linear map on the flattened patch (spec 2.2).
    const proj = this.p('visual.patch_embed.proj.weight');
    let h = linear(pixelValues, proj.reshape([c.embedDim, patchDim]));
    // The rotary tables go where the weights are (pixelValues must be there too: linear checks).
    // host: the table builder reads the (hpos, wpos) ids in JS; only the tables are uploaded.
    const rotPos = Tensor.from(visionRotaryPositions(imageGridThw, c.spatialMergeSize), [n, 2], {
      dtype: 'int32',
      device: 'cpu',
    });
    const { cos, sin } = visionRotaryCosSin(rotPos, c.embedDim / c.numHeads, 10000, { device: proj.device });
    rotPos.dispose();
    // Segment boundaries stay host values: attention checks them on the host and its binding
    // copies them to the kernel (a device tensor would only be read back first).
    const cuSeqlens = visionCuSeqlens(imageGridThw);
    for (let i = 0; i < c.depth; i++) {
      h = options.gradientCheckpointing
        ? checkpoint((x, cs, sn) => this.block(i, x, cs, sn, cuSeqlens), [h, cos, sin])
        : this.block(i, h, cos, sin, cuSeqlens);
    }
    cos.dispose(); // the graph keeps views where backward needs them
    sin.dispose();
    return this.merger(h);
  }

  private block(i: number, h: Tensor, cos: Tensor, sin: Tensor, cuSeqlens: Int32Array): Tensor {
    const c = this.config;
    const pre = `visual.blocks.${i}.`;
    const n = h.shape[0];
    const headDim = c.embedDim / c.numHeads;
    const a = layerNorm(h, this.p(`${pre}norm1.weight`), this.p(`${pre}norm1.bias`), VISION_LN_EPS);
    // qkv rows are [q | k | v], heads contiguous inside each (spec 2.5).
    const qkv = linear(a, this.p(`${pre}attn.qkv.weight`), this.p(`${pre}attn.qkv.bias`)).reshape([
      n,
      3,
      c.numHeads,
      headDim,
    ]);
    const part = (j: number) => narrow(qkv, 1, j, 1).reshape([n, c.numHeads, headDim]);
    const q = rotary(part(0), cos, sin);
    const k = rotary(part(1), cos, sin);
    const o = attention(q, k, part(2), { causal: false, cuSeqlens }).reshape([n, c.embedDim]);
    h = add(h, linear(o, this.p(`${pre}attn.proj.weight`), this.p(`${pre}attn.proj.bias`)));
    const m = layerNorm(h, this.p(`${pre}norm2.weight`), this.p(`${pre}norm2.bias`), VISION_LN_EPS);
    const f = linear(
      quickGelu(linear(m, this.p(`${pre}mlp.fc1.weight`), this.p(`${pre}mlp.fc1.bias`))),
      this.p(`${pre}mlp.fc2.weight`),
      this.p(`${pre}mlp.fc2.bias`),
    );
    return add(h, f);
  }

  /** LayerNorm, then 2x2 windows (4 consecutive rows) concatenated, exact-GELU MLP (spec 2.6). */
  private merger(h: Tensor): Tensor {
    const c = this.config;
    const m2 = c.spatialMergeSize * c.spatialMergeSize;
    const z = layerNorm(
      h,
      this.p('visual.merger.ln_q.weight'),
      this.p('visual.merger.ln_q.bias'),
      VISION_LN_EPS,
    ).reshape([h.shape[0] / m2, c.embedDim * m2]);
    const y = gelu(linear(z, this.p('visual.merger.mlp.0.weight'), this.p('visual.merger.mlp.0.bias')));
    return linear(y, this.p('visual.merger.mlp.2.weight'), this.p('visual.merger.mlp.2.bias'));
  }
}
