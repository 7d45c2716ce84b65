// Qwen2VLForConditionalGeneration: the vision tower, the merge of image features into the token
// embeddings (spec section 4), the decoder with M-RoPE, and the tied LM head. Loads and saves
// Hugging Face checkpoint folders (config.json + safetensors).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint, type SaveOptions, saveCheckpointTensors } from '../io/checkpoint.js';
import { checkEntryShape, readTensor } from '../io/safetensors.js';
import type { Device } from '../tensor/dtype.js';
import { embedding } from '../tensor/ops/embedding.js';
import { type LogprobOptions, lmHeadLogprobs } from '../tensor/ops/logprobs.js';
import { maskedScatterRows } from '../tensor/ops/masked-scatter.js';
import { linear } from '../tensor/ops/matmul.js';
import { nativeOp } from '../tensor/ops/native.js';
import { mropeCosSin, ropeInvFreq } from '../tensor/ops/rope-tables.js';
import { keep } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { parseQwen2VLConfig, type Qwen2VLConfig, textHeadDim } from './config.js';
import { checkpointNames, parameterShapes } from './parameters.js';
import { getRopeIndex } from './rope-index.js';
import { type LayerCache, Qwen2Decoder } from './text.js';
import { Qwen2VisionTransformer } from './vision.js';

const fill = nativeOp<(o: { out: Tensor; value: number }) => void>('fill');
const fillNormal =
  nativeOp<(o: { out: Tensor; mean: number; std: number; seed: number }) => void>('fillNormal');

export interface Qwen2VLInputs {
  /** [B, S] token ids, row-major, left padded. */
  inputIds: Int32Array;
  batch: number;
  seqLen: number;
  /** [B, S] 1 = token, 0 = padding. Default: all ones. */
  attentionMask?: Int32Array;
  /** [patches, 1176] from the image processor, all images of the batch in order. */
  pixelValues?: Tensor;
  /** [images * 3] (t, h, w) per image. */
  imageGridThw?: Int32Array;
}

export interface Qwen2VLOutput {
  /** [B, S, H] after the final norm (the LM head's input). */
  hidden: Tensor;
  /** [B, S, H] token embeddings after the image features were scattered in. */
  inputsEmbeds: Tensor;
  /** [images' tokens, H] the merger's output, when there were images. */
  visionEmbeds?: Tensor;
  /** Each decoder layer's output [B, S, H] (with `outputHiddenStates`). */
  hiddenStates?: Tensor[];
  /** [3, B, S] M-RoPE positions and [B] rope deltas (get_rope_index). */
  positionIds: Int32Array;
  ropeDeltas: Int32Array;
}

export class Qwen2VLForConditionalGeneration {
  readonly visual: Qwen2VisionTransformer;
  readonly model: Qwen2Decoder;
  private readonly invFreq: Float32Array;

  private constructor(
    readonly config: Qwen2VLConfig,
    /** Parameters by hub-layout name. */
    readonly params: Map<string, Tensor>,
  ) {
    const p = (name: string) => {
      const t = params.get(name);
      if (!t) throw new Error(`Qwen2-VL: parameter ${name} is missing`);
      return t;
    };
    this.visual = new Qwen2VisionTransformer(config.vision, p);
    this.model = new Qwen2Decoder(config.text, p);
    this.invFreq = ropeInvFreq(textHeadDim(config.text), config.text.ropeTheta);
  }

  /** Loads a Hugging Face checkpoint folder (config.json + model.safetensors or shards). */
  static fromPretrained(
    dir: string,
    options: { device?: Device; requiresGrad?: boolean } = {},
  ): Qwen2VLForConditionalGeneration {
    const configPath = join(dir, 'config.json');
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (e) {
      throw new Error(`${configPath}: ${(e as Error).message}`);
    }
    const config = parseQwen2VLConfig(json, configPath);
    const entries = openCheckpoint(dir);
    const params = new Map<string, Tensor>();
    try {
      for (const [name, shape] of parameterShapes(config)) {
        const entry = checkpointNames(name)
          .map((n) => entries.get(n))
          .find((e) => e !== undefined);
        if (!entry) throw new Error(`${dir}: tensor ${name} is missing from the checkpoint`);
        checkEntryShape(entry, shape);
        const t = readTensor(entry, { device: options.device });
        t.requiresGrad = options.requiresGrad ?? true;
        params.set(name, t);
      }
    } catch (e) {
      for (const t of params.values()) t.dispose();
      throw e;
    }
    return new Qwen2VLForConditionalGeneration(config, params);
  }

  /**
   * A model with random weights, as HF initialises Qwen2-VL: normal(0, initializerRange) for
   * linear, conv and embedding weights, 1 for norm weights, 0 for biases. Reproducible from `seed`
   * (a native counter-based generator: 2.2B parameters fill in seconds).
   */
  static fromConfig(
    config: Qwen2VLConfig,
    options: { seed?: number; initializerRange?: number; device?: Device } = {},
  ): Qwen2VLForConditionalGeneration {
    const std = options.initializerRange ?? 0.02;
    const params = new Map<string, Tensor>();
    let index = 0;
    for (const [name, shape] of parameterShapes(config)) {
      const t = keep(Tensor.empty(shape));
      if (/norm|ln_q/.test(name) && name.endsWith('weight')) fill({ out: t, value: 1 });
      else if (name.endsWith('bias')) fill({ out: t, value: 0 });
      else fillNormal({ out: t, mean: 0, std, seed: (options.seed ?? 0) * 1_000_003 + index });
      index += 1;
      const placed = options.device && options.device !== 'cpu' ? keep(t.to(options.device)) : t;
      if (placed !== t) t.dispose();
      placed.requiresGrad = true;
      params.set(name, placed);
    }
    return new Qwen2VLForConditionalGeneration(config, params);
  }

  /** A copy with its own weights (the frozen reference policy of GRPO: no gradients). */
  copy(options: { requiresGrad?: boolean } = {}): Qwen2VLForConditionalGeneration {
    const params = new Map<string, Tensor>();
    for (const [name, t] of this.params) {
      const c = keep(Tensor.from(t.toFloat32Array(), t.shape, { device: t.device }));
      c.requiresGrad = options.requiresGrad ?? false;
      params.set(name, c);
    }
    return new Qwen2VLForConditionalGeneration(this.config, params);
  }

  /** The LM head: the tied embedding or lm_head.weight. */
  get lmHeadWeight(): Tensor {
    return this.params.get(
      this.config.text.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
    )!;
  }

  parameters(): Tensor[] {
    return [...this.params.values()];
  }

  namedParameters(): [string, Tensor][] {
    return [...this.params.entries()];
  }

  numParameters(): number {
    return this.parameters().reduce((s, t) => s + t.size, 0);
  }

  /** Embeddings with the image features in place, and the M-RoPE positions. */
  embed(
    inputs: Qwen2VLInputs,
    options: { gradientCheckpointing?: boolean } = {},
  ): {
    embeds: Tensor;
    visionEmbeds?: Tensor;
    positionIds: Int32Array;
    ropeDeltas: Int32Array;
  } {
    const { batch: b, seqLen: s, inputIds } = inputs;
    const c = this.config;
    if (inputIds.length !== b * s)
      throw new RangeError(`inputIds has ${inputIds.length} ids, not batch * seqLen = ${b} * ${s}`);
    for (let i = 0; i < inputIds.length; i++) {
      if (inputIds[i] < 0 || inputIds[i] >= c.text.vocabSize) {
        throw new RangeError(
          `inputIds[${i}] = ${inputIds[i]} is outside the vocabulary [0, ${c.text.vocabSize})`,
        );
      }
    }
    const { positionIds, ropeDeltas } = getRopeIndex({
      inputIds,
      batch: b,
      seqLen: s,
      attentionMask: inputs.attentionMask,
      imageGridThw: inputs.imageGridThw,
      imageTokenId: c.imageTokenId,
      visionStartTokenId: c.visionStartTokenId,
      spatialMergeSize: c.vision.spatialMergeSize,
    });
    const ids = Tensor.from(inputIds, [b, s], { dtype: 'int32' });
    let embeds = embedding(ids, this.params.get('model.embed_tokens.weight')!);
    let visionEmbeds: Tensor | undefined;
    const imageMask = inputIds.map((id) => (id === c.imageTokenId ? 1 : 0));
    const imageTokens = imageMask.reduce((a, x) => a + x, 0);
    if (inputs.pixelValues) {
      visionEmbeds = this.visual.forward(inputs.pixelValues, inputs.imageGridThw ?? new Int32Array(0), {
        gradientCheckpointing: options.gradientCheckpointing,
      });
      if (visionEmbeds.shape[0] !== imageTokens) {
        throw new RangeError(
          `the ids hold ${imageTokens} <|image_pad|> tokens but the images give ${visionEmbeds.shape[0]} features`,
        );
      }
      const flat = embeds.reshape([b * s, c.text.hiddenSize]);
      embeds = maskedScatterRows(
        flat,
        Tensor.from(imageMask, [b * s], { dtype: 'int32' }),
        visionEmbeds,
      ).reshape([b, s, c.text.hiddenSize]);
    } else if (imageTokens > 0) {
      throw new RangeError(`the ids hold ${imageTokens} <|image_pad|> tokens but no pixelValues were given`);
    }
    return { embeds, visionEmbeds, positionIds, ropeDeltas };
  }

  /**
   * Full forward to the final hidden states (no logits: see logits() / tokenLogprobs()).
   * `gradientCheckpointing` (TRL's name): each decoder layer and vision block keeps only its output
   * for backward and is recomputed there (one more forward for a fraction of the activations).
   */
  forward(
    inputs: Qwen2VLInputs,
    options: { outputHiddenStates?: boolean; gradientCheckpointing?: boolean } = {},
  ): Qwen2VLOutput {
    const gradientCheckpointing = options.gradientCheckpointing;
    const { embeds, visionEmbeds, positionIds, ropeDeltas } = this.embed(inputs, { gradientCheckpointing });
    const { cos, sin } = this.ropeTables(positionIds, inputs.batch, inputs.seqLen);
    const keyMask = inputs.attentionMask
      ? Tensor.from(inputs.attentionMask, [inputs.batch, inputs.seqLen], { dtype: 'int32' })
      : undefined;
    const hiddenStates: Tensor[] | undefined = options.outputHiddenStates ? [] : undefined;
    const hidden = this.model.forward(
      { hidden: embeds, cos, sin, keyMask },
      { hiddenStates, gradientCheckpointing },
    );
    return { hidden, inputsEmbeds: embeds, visionEmbeds, hiddenStates, positionIds, ropeDeltas };
  }

  /** @internal M-RoPE cos / sin tables [B, S, head_dim] for positions [3, B, S]. */
  ropeTables(positionIds: Int32Array, batch: number, seqLen: number): { cos: Tensor; sin: Tensor } {
    const pos = Tensor.from(positionIds, [3, batch, seqLen], { dtype: 'int32' });
    return mropeCosSin(pos, this.invFreq, this.config.text.mropeSection);
  }

  /** @internal One decoder pass with a KV cache (generation). */
  decode(embeds: Tensor, positionIds: Int32Array, keyMask: Tensor, cache: LayerCache[]): Tensor {
    const [b, s] = embeds.shape;
    const { cos, sin } = this.ropeTables(positionIds, b, s);
    return this.model.forward({ hidden: embeds, cos, sin, keyMask }, { cache });
  }

  /** Full logits [..., vocab] from hidden states (inference and tests; training uses tokenLogprobs). */
  logits(hidden: Tensor): Tensor {
    return linear(hidden, this.lmHeadWeight);
  }

  /** log p(target) per position from hidden states, without [tokens, vocab] logits. */
  tokenLogprobs(hidden: Tensor, targets: Tensor, options: LogprobOptions = {}): Tensor {
    return lmHeadLogprobs(hidden, this.lmHeadWeight, targets, options);
  }

  /** Writes config.json and the weights in the hub layout (sharded above maxShardBytes). */
  savePretrained(dir: string, options: SaveOptions = {}): void {
    mkdirSync(dir, { recursive: true });
    const tensors: [string, Tensor][] = [...this.params.entries()];
    for (const [name, t] of tensors)
      if (t.isDisposed) throw new Error(`savePretrained: parameter ${name} was disposed`);
    saveCheckpointTensors(dir, tensors, options);
    const raw = { ...this.config.raw, torch_dtype: options.dtype === 'BF16' ? 'bfloat16' : 'float32' };
    writeFileSync(join(dir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
  }

  /** Frees every parameter. */
  dispose(): void {
    for (const t of this.params.values()) t.dispose();
  }

  /** Parameter by hub name (throws with the name when absent). */
  parameter(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`Qwen2-VL has no parameter ${name}`);
    return t;
  }
}
