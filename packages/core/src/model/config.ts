// Qwen2-VL configuration from a Hugging Face config.json, in every layout the hub has used
// (qwen2vl-spec.md section 1 and 9): flat text fields (4.45 hub files) or `text_config` (>= 4.52),
// rope settings in `rope_scaling` (mrope / default) or `rope_parameters` (v5).

export interface Qwen2VLVisionConfig {
  depth: number;
  embedDim: number;
  numHeads: number;
  mlpRatio: number;
  inChannels: number;
  /** Output width of the PatchMerger: the LLM hidden size. */
  hiddenSize: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  hiddenAct: 'quick_gelu';
}

export interface Qwen2VLTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Frequencies taken from the temporal / height / width positions (sums to head_dim / 2). */
  mropeSection: [number, number, number];
  tieWordEmbeddings: boolean;
  hiddenAct: 'silu';
}

export interface Qwen2VLConfig {
  text: Qwen2VLTextConfig;
  vision: Qwen2VLVisionConfig;
  bosTokenId: number | null;
  /** Stop ids from config.json's eos_token_id (one or a list). */
  eosTokenIds: number[];
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  /** The original JSON, written back on save with the fields we own updated. */
  raw: Record<string, unknown>;
}

/**
 * Qwen2-VL's epsilon for every norm: RMSNorm's default when config.json has no rms_norm_eps (spec
 * §3.2, §8.6), and the vision LayerNorms', which HF hard-codes (§1.2, §2.5, §2.6).
 */
export const QWEN2VL_NORM_EPS = 1e-6;

type Json = Record<string, unknown>;

class ConfigReader {
  constructor(
    private readonly source: string,
    private readonly objects: { prefix: string; obj: Json }[],
  ) {}

  private find(keys: string[]): { where: string; value: unknown } | undefined {
    for (const { prefix, obj } of this.objects) {
      for (const k of keys)
        if (obj[k] !== undefined && obj[k] !== null) return { where: `${prefix}${k}`, value: obj[k] };
    }
    return undefined;
  }

  int(keys: string[], fallback?: number, min = 1): number {
    const found = this.find(keys);
    if (!found) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${this.source}: missing "${keys[0]}"`);
    }
    if (!Number.isInteger(found.value) || (found.value as number) < min) {
      throw new Error(
        `${this.source}: "${found.where}" must be an integer >= ${min} (got ${JSON.stringify(found.value)})`,
      );
    }
    return found.value as number;
  }

  number(keys: string[], fallback?: number): number {
    const found = this.find(keys);
    if (!found) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${this.source}: missing "${keys[0]}"`);
    }
    if (typeof found.value !== 'number' || !Number.isFinite(found.value) || found.value <= 0) {
      throw new Error(
        `${this.source}: "${found.where}" must be a positive number (got ${JSON.stringify(found.value)})`,
      );
    }
    return found.value;
  }

  optional(keys: string[]): unknown {
    return this.find(keys)?.value;
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and validates a Qwen2-VL config.json object; `source` names the file in errors. */
export function parseQwen2VLConfig(json: unknown, source = 'config.json'): Qwen2VLConfig {
  if (!isObject(json)) throw new Error(`${source}: expected a JSON object`);
  const modelType = json.model_type;
  if (modelType !== undefined && modelType !== 'qwen2_vl') {
    throw new Error(
      `${source}: model_type is "${String(modelType)}"; this loader reads Qwen2-VL ("qwen2_vl") checkpoints`,
    );
  }
  const textJson = isObject(json.text_config) ? json.text_config : {};
  const visionJson = json.vision_config;
  if (!isObject(visionJson)) throw new Error(`${source}: missing "vision_config"`);
  const text = new ConfigReader(source, [
    { prefix: 'text_config.', obj: textJson },
    { prefix: '', obj: json },
  ]);
  const vision = new ConfigReader(source, [{ prefix: 'vision_config.', obj: visionJson }]);

  const hiddenSize = text.int(['hidden_size']);
  const numHeads = text.int(['num_attention_heads']);
  const numKv = text.int(['num_key_value_heads'], numHeads);
  if (hiddenSize % numHeads !== 0)
    throw new Error(
      `${source}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`,
    );
  if (numHeads % numKv !== 0)
    throw new Error(
      `${source}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKv}`,
    );
  const headDim = hiddenSize / numHeads;

  // rope: v5 rope_parameters, else rope_scaling; theta from rope_parameters or rope_theta.
  const ropeParams = text.optional(['rope_parameters']);
  const ropeScaling = text.optional(['rope_scaling']);
  const rope = isObject(ropeParams) ? ropeParams : isObject(ropeScaling) ? ropeScaling : undefined;
  const section = rope?.mrope_section;
  if (
    !Array.isArray(section) ||
    section.length !== 3 ||
    !section.every((x) => Number.isInteger(x) && x > 0)
  ) {
    throw new Error(
      `${source}: rope_scaling.mrope_section (or rope_parameters.mrope_section) must be three positive integers`,
    );
  }
  const mropeSection = section as [number, number, number];
  if (mropeSection[0] + mropeSection[1] + mropeSection[2] !== headDim / 2) {
    throw new Error(
      `${source}: mrope_section [${mropeSection.join(', ')}] must add up to head_dim / 2 = ${headDim / 2}`,
    );
  }
  const ropeTheta =
    isObject(ropeParams) && typeof ropeParams.rope_theta === 'number'
      ? ropeParams.rope_theta
      : text.number(['rope_theta'], 10000);

  const hiddenAct = text.optional(['hidden_act']) ?? 'silu';
  if (hiddenAct !== 'silu')
    throw new Error(`${source}: hidden_act "${String(hiddenAct)}" is not supported (Qwen2-VL uses "silu")`);
  const visionAct = vision.optional(['hidden_act']) ?? 'quick_gelu';
  if (visionAct !== 'quick_gelu') {
    throw new Error(
      `${source}: vision_config.hidden_act "${String(visionAct)}" is not supported (Qwen2-VL uses "quick_gelu")`,
    );
  }

  const embedDim = vision.int(['embed_dim']);
  const visionHeads = vision.int(['num_heads']);
  if (embedDim % visionHeads !== 0)
    throw new Error(
      `${source}: vision_config.embed_dim ${embedDim} is not a multiple of num_heads ${visionHeads}`,
    );
  if ((embedDim / visionHeads) % 4 !== 0) {
    throw new Error(
      `${source}: the vision head dim ${embedDim / visionHeads} must be a multiple of 4 for the 2-D rotary embedding`,
    );
  }
  // The merger's output width comes from the config (the class default 3584 is the 7B value).
  const mergerOut = vision.int(['hidden_size']);
  if (mergerOut !== hiddenSize) {
    throw new Error(
      `${source}: vision_config.hidden_size ${mergerOut} (merger output) must equal the LLM hidden_size ${hiddenSize}`,
    );
  }

  const eos = text.optional(['eos_token_id']);
  const eosTokenIds = Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? [eos] : [];
  const bos = text.optional(['bos_token_id']);
  const ids = new ConfigReader(source, [
    { prefix: '', obj: json },
    { prefix: 'text_config.', obj: textJson },
  ]);

  return {
    text: {
      vocabSize: text.int(['vocab_size']),
      hiddenSize,
      intermediateSize: text.int(['intermediate_size']),
      numHiddenLayers: text.int(['num_hidden_layers']),
      numAttentionHeads: numHeads,
      numKeyValueHeads: numKv,
      rmsNormEps: text.number(['rms_norm_eps'], QWEN2VL_NORM_EPS),
      ropeTheta,
      mropeSection,
      tieWordEmbeddings: (json.tie_word_embeddings ?? textJson.tie_word_embeddings ?? false) === true,
      hiddenAct: 'silu',
    },
    vision: {
      depth: vision.int(['depth']),
      embedDim,
      numHeads: visionHeads,
      mlpRatio: vision.number(['mlp_ratio'], 4),
      inChannels: vision.int(['in_channels', 'in_chans'], 3),
      hiddenSize: mergerOut,
      patchSize: vision.int(['patch_size', 'spatial_patch_size'], 14),
      temporalPatchSize: vision.int(['temporal_patch_size'], 2),
      spatialMergeSize: vision.int(['spatial_merge_size'], 2),
      hiddenAct: 'quick_gelu',
    },
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds,
    imageTokenId: ids.int(['image_token_id'], 151655, 0),
    videoTokenId: ids.int(['video_token_id'], 151656, 0),
    visionStartTokenId: ids.int(['vision_start_token_id'], 151652, 0),
    raw: json,
  };
}

/** Head dim of the LLM attention. */
export function textHeadDim(c: Qwen2VLTextConfig): number {
  return c.hiddenSize / c.numAttentionHeads;
}
