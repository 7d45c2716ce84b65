// Qwen2VLForConditionalGeneration: the vision tower, the merge of image features into the token
// embeddings (spec section 4), the decoder with M-RoPE, and the tied LM head. Loads and saves
// Hugging Face checkpoint folders (config.json + safetensors).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint, type SaveOptions, saveCheckpointTensors } from '../io/checkpoint.js';
import { checkEntryShape, readTensor } from '../io/safetensors.js';
import { noGrad } from '../tensor/autograd.js';
import type { Device } from '../tensor/dtype.js';
import { clone } from '../tensor/ops/arithmetic.js';
import { embedding } from '../tensor/ops/embedding.js';
import { type LogprobOptions, lmHeadLogprobs } from '../tensor/ops/logprobs.js';
import { maskedScatterRows } from '../tensor/ops/masked-scatter.js';
import { linear } from '../tensor/ops/matmul.js';
import { nativeOp } from '../tensor/ops/native.js';
import { keep } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { parseQwen2VLConfig, type Qwen2VLConfig, textHeadDim } from './config.js';
import { checkpointNames, parameterShapes } from './parameters.js';
import { getRopeIndex } from './rope-index.js';
import { mropeCosSin, ropeInvFreq } from './rope-tables.js';
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
  /**
   * [patches, 1176] from the image processor, all images of the batch in order: host values
   * (uploaded to the model's device once per forward) or a tensor already on that device.
   */
  pixelValues?: Tensor | Float32Array;
  /** [images * 3] (t, h, w) per image. */
  imageGridThw?: Int32Array;
}

/** Compute dtypes a model may be asked for. */
export type ModelDType = 'float32' | 'bfloat16';

/** Where a model's weights live, and the dtype it computes in. */
export interface ModelPlacement {
  /** The device of the weights, and of every tensor a forward makes (default 'cpu'). */
  device?: Device;
  /**
   * Compute dtype (default 'float32'). 'bfloat16' is accepted by the type so that callers can be
   * written for it, but throws for now: the ops compute in float32 only (bf16 checkpoints load as
   * float32 weights with 'float32').
   */
  dtype?: ModelDType;
}

/** The placement options, checked: a clear error for anything this build cannot do. */
function resolvePlacement(where: string, options: ModelPlacement): { device: Device } {
  const device = options.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda')
    throw new TypeError(`${where}: device must be 'cpu' or 'cuda' (got ${JSON.stringify(device)})`);
  const dtype = options.dtype ?? 'float32';
  if (dtype === 'bfloat16') {
    throw new Error(
      `${where}: dtype 'bfloat16' is not yet supported (the ops compute in float32; ` +
        "bf16 checkpoints load as float32 weights with dtype 'float32')",
    );
  }
  if (dtype !== 'float32')
    throw new TypeError(`${where}: dtype must be 'float32' or 'bfloat16' (got ${JSON.stringify(dtype)})`);
  return { device };
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
  private placedOn: Device;

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
    // Every tensor a forward makes goes where the weights are, so they must agree.
    let first: [string, Tensor] | undefined;
    for (const [name, t] of params) {
      first ??= [name, t];
      if (t.device !== first[1].device)
        throw new Error(
          `Qwen2-VL: parameter ${first[0]} is on ${first[1].device} but ${name} is on ${t.device}`,
        );
    }
    this.placedOn = first?.[1].device ?? 'cpu';
  }

  /** The device of the weights: where inputs are uploaded and every activation is made. */
  get device(): Device {
    return this.placedOn;
  }

  /** The compute dtype (float32 only, for now). */
  get dtype(): ModelDType {
    return 'float32';
  }

  /**
   * Loads a Hugging Face checkpoint folder (config.json + model.safetensors or shards), each weight
   * streamed from the file straight into memory on `options.device` (F32, BF16 and F16 files alike
   * become float32 weights).
   */
  static fromPretrained(
    dir: string,
    options: ModelPlacement & { requiresGrad?: boolean } = {},
  ): Qwen2VLForConditionalGeneration {
    const { device } = resolvePlacement('Qwen2VLForConditionalGeneration.fromPretrained', options);
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
        const t = readTensor(entry, { device });
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
    options: ModelPlacement & { seed?: number; initializerRange?: number } = {},
  ): Qwen2VLForConditionalGeneration {
    const { device } = resolvePlacement('Qwen2VLForConditionalGeneration.fromConfig', options);
    const std = options.initializerRange ?? 0.02;
    const params = new Map<string, Tensor>();
    let index = 0;
    for (const [name, shape] of parameterShapes(config)) {
      // host: fillNormal runs on the CPU only, which also makes a seed give the same weights on
      // every device; each weight is then copied to the device once.
      const t = keep(Tensor.empty(shape, { device: 'cpu' }));
      if (/norm|ln_q/.test(name) && name.endsWith('weight')) fill({ out: t, value: 1 });
      else if (name.endsWith('bias')) fill({ out: t, value: 0 });
      else fillNormal({ out: t, mean: 0, std, seed: (options.seed ?? 0) * 1_000_003 + index });
      index += 1;
      const placed = device !== 'cpu' ? keep(t.to(device)) : t;
      if (placed !== t) t.dispose();
      placed.requiresGrad = true;
      params.set(name, placed);
    }
    return new Qwen2VLForConditionalGeneration(config, params);
  }

  /**
   * A copy with its own weights on the same device (the frozen reference policy of GRPO: no
   * gradients), copied there without a round trip through the host.
   */
  copy(options: { requiresGrad?: boolean } = {}): Qwen2VLForConditionalGeneration {
    const params = new Map<string, Tensor>();
    for (const [name, t] of this.params) {
      const c = keep(noGrad(() => clone(t)));
      c.requiresGrad = options.requiresGrad ?? false;
      params.set(name, c);
    }
    return new Qwen2VLForConditionalGeneration(this.config, params);
  }

  /**
   * Moves every weight (and gradient) to `device` in place, like torch's Module.to, and returns
   * this model. The old tensors are freed: make optimizers after moving the model, as they hold
   * the parameter tensors themselves.
   */
  to(device: Device): this {
    resolvePlacement('Qwen2VLForConditionalGeneration.to', { device });
    if (device === this.placedOn) return this;
    // Everything is copied before anything is freed: a failure (out of memory) leaves the model as
    // it was rather than split over two devices.
    const moved = new Map<string, Tensor>();
    try {
      for (const [name, p] of this.params) {
        p.assertUsable('Qwen2VLForConditionalGeneration.to', name);
        // noGrad: the copy is a new leaf, not a step of anyone's graph.
        const t = keep(noGrad(() => p.to(device)));
        moved.set(name, t);
        t.requiresGrad = p.requiresGrad;
        if (p.grad && !p.grad.isDisposed) t.grad = keep(noGrad(() => p.grad!.to(device)));
      }
    } catch (e) {
      for (const t of moved.values()) {
        t.zeroGrad();
        t.dispose();
      }
      throw e;
    }
    for (const [name, t] of moved) {
      const p = this.params.get(name)!;
      p.zeroGrad();
      p.dispose();
      this.params.set(name, t);
    }
    this.placedOn = device;
    return this;
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

  /** int32 host values as a tensor on the model's device (one upload). */
  private upload(values: Int32Array, shape: number[]): Tensor {
    return Tensor.from(values, shape, { dtype: 'int32', device: this.placedOn });
  }

  /**
   * Token embeddings [batch, seqLen, H] of host ids (checked against the vocabulary on the host,
   * then uploaded once): the first step of embed(), and what decoding steps feed back.
   */
  embedTokens(inputIds: Int32Array, batch: number, seqLen: number): Tensor {
    const vocab = this.config.text.vocabSize;
    if (inputIds.length !== batch * seqLen)
      throw new RangeError(`inputIds has ${inputIds.length} ids, not batch * seqLen = ${batch} * ${seqLen}`);
    for (let i = 0; i < inputIds.length; i++) {
      if (inputIds[i] < 0 || inputIds[i] >= vocab)
        throw new RangeError(`inputIds[${i}] = ${inputIds[i]} is outside the vocabulary [0, ${vocab})`);
    }
    const ids = this.upload(inputIds, [batch, seqLen]);
    const embeds = embedding(ids, this.parameter('model.embed_tokens.weight'));
    ids.dispose(); // the graph keeps its own view
    return embeds;
  }

  /** pixelValues on the model's device: host values uploaded, a tensor checked to be there. */
  private pixelTensor(pixelValues: Tensor | Float32Array): Tensor {
    const v = this.config.vision;
    const patchDim = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
    if (pixelValues instanceof Tensor) {
      if (pixelValues.device !== this.placedOn) {
        throw new Error(
          `pixelValues is on ${pixelValues.device} but the model is on ${this.placedOn}: pass a Float32Array ` +
            `(uploaded once) or move it with .to('${this.placedOn}')`,
        );
      }
      return pixelValues;
    }
    if (pixelValues.length % patchDim !== 0) {
      throw new RangeError(
        `pixelValues has ${pixelValues.length} values, not a whole number of patches of ${patchDim}`,
      );
    }
    return Tensor.from(pixelValues, [pixelValues.length / patchDim, patchDim], { device: this.placedOn });
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
    let embeds = this.embedTokens(inputIds, b, s);
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
    let visionEmbeds: Tensor | undefined;
    const imageMask = inputIds.map((id) => (id === c.imageTokenId ? 1 : 0));
    const imageTokens = imageMask.reduce((a, x) => a + x, 0);
    if (inputs.pixelValues) {
      const pixels = this.pixelTensor(inputs.pixelValues);
      visionEmbeds = this.visual.forward(pixels, inputs.imageGridThw ?? new Int32Array(0), {
        gradientCheckpointing: options.gradientCheckpointing,
      });
      if (pixels !== inputs.pixelValues) pixels.dispose(); // our upload; the graph keeps a view
      if (visionEmbeds.shape[0] !== imageTokens) {
        throw new RangeError(
          `the ids hold ${imageTokens} <|image_pad|> tokens but the images give ${visionEmbeds.shape[0]} features`,
        );
      }
      const flat = embeds.reshape([b * s, c.text.hiddenSize]);
      const mask = this.upload(imageMask, [b * s]);
      embeds = maskedScatterRows(flat, mask, visionEmbeds).reshape([b, s, c.text.hiddenSize]);
      mask.dispose();
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
      ? this.upload(inputs.attentionMask, [inputs.batch, inputs.seqLen])
      : undefined;
    const hiddenStates: Tensor[] | undefined = options.outputHiddenStates ? [] : undefined;
    const hidden = this.model.forward(
      { hidden: embeds, cos, sin, keyMask },
      { hiddenStates, gradientCheckpointing },
    );
    // Made here for this pass only (the graph keeps views of what backward needs).
    for (const t of [cos, sin, keyMask]) t?.dispose();
    return { hidden, inputsEmbeds: embeds, visionEmbeds, hiddenStates, positionIds, ropeDeltas };
  }

  /**
   * @internal M-RoPE cos / sin tables [B, S, head_dim] for positions [3, B, S], built on the host
   * (where get_rope_index made the positions) and uploaded once to the model's device.
   */
  ropeTables(positionIds: Int32Array, batch: number, seqLen: number): { cos: Tensor; sin: Tensor } {
    // host: the table builder reads the positions in JS; only the tables go to the device.
    const pos = Tensor.from(positionIds, [3, batch, seqLen], { dtype: 'int32', device: 'cpu' });
    try {
      return mropeCosSin(pos, this.invFreq, this.config.text.mropeSection, { device: this.placedOn });
    } finally {
      pos.dispose();
    }
  }

  /**
   * @internal One decoder pass with a KV cache (generation). keyMask [B, past + S]: host values
   * (uploaded) or an int32 tensor on the model's device.
   */
  decode(embeds: Tensor, positionIds: Int32Array, keyMask: Tensor | Int32Array, cache: LayerCache[]): Tensor {
    const [b, s] = embeds.shape;
    const { cos, sin } = this.ropeTables(positionIds, b, s);
    const mask = keyMask instanceof Tensor ? keyMask : this.upload(keyMask, [b, keyMask.length / b]);
    const hidden = this.model.forward({ hidden: embeds, cos, sin, keyMask: mask }, { cache });
    for (const t of [cos, sin]) t.dispose();
    if (mask !== keyMask) mask.dispose();
    return hidden;
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
