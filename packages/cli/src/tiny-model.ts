// The built-in tiny Qwen2-VL (`model.path: tiny`): the real architecture (vision tower with 2D
// RoPE, PatchMerger, decoder with M-RoPE, tied LM head) at a size that trains on 2 CPU cores in
// minutes, on the task tokenizer of @othink/data (809 ids: 795 byte-level BPE tokens for the
// counting / geometry text, then the 14 Qwen2-VL specials). Weights are random (HF init).
import type { Qwen2Tokenizer } from '@othink/data';
import { mropeSection } from './config/checks.js';
import { type TinyModelConfig, TinyModelSchema } from './config/schema.js';

/** The tiny model's defaults: about 1.3 M parameters (of which 0.1 M the embedding). */
export const TINY_MODEL_DEFAULTS: TinyModelConfig = TinyModelSchema.parse({});

/** A Hugging Face config.json object for the tiny model on `tokenizer`'s vocabulary. */
export function tinyQwen2VLConfig(
  tokenizer: Qwen2Tokenizer,
  tiny: Partial<TinyModelConfig> = {},
): Record<string, unknown> {
  const t = { ...TINY_MODEL_DEFAULTS, ...tiny };
  const headDim = t.hiddenSize / t.numAttentionHeads;
  const section = mropeSection(headDim);
  if (!Number.isInteger(headDim) || !section) {
    throw new Error(
      `tiny model: hiddenSize ${t.hiddenSize} / numAttentionHeads ${t.numAttentionHeads} gives head_dim ${headDim}, which has no M-RoPE split`,
    );
  }
  const id = (token: string) => {
    const v = tokenizer.tokenToId(token);
    if (v === undefined) throw new Error(`tiny model: the tokenizer has no ${token}`);
    return v;
  };
  return {
    architectures: ['Qwen2VLForConditionalGeneration'],
    model_type: 'qwen2_vl',
    attention_dropout: 0.0,
    bos_token_id: id('<|endoftext|>'),
    eos_token_id: id('<|im_end|>'),
    pad_token_id: id('<|endoftext|>'),
    vision_start_token_id: id('<|vision_start|>'),
    vision_end_token_id: id('<|vision_end|>'),
    vision_token_id: id('<|vision_pad|>'),
    image_token_id: id('<|image_pad|>'),
    video_token_id: id('<|video_pad|>'),
    hidden_act: 'silu',
    hidden_size: t.hiddenSize,
    initializer_range: t.initializerRange,
    intermediate_size: t.intermediateSize,
    max_position_embeddings: 32768,
    max_window_layers: t.numHiddenLayers,
    num_attention_heads: t.numAttentionHeads,
    num_hidden_layers: t.numHiddenLayers,
    num_key_value_heads: t.numKeyValueHeads,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: tokenizer.vocabSize,
    vision_config: {
      depth: t.visionDepth,
      embed_dim: t.visionEmbedDim,
      mlp_ratio: 4,
      num_heads: t.visionNumHeads,
      in_chans: 3,
      hidden_size: t.hiddenSize,
      patch_size: 14,
      spatial_merge_size: 2,
      spatial_patch_size: 14,
      temporal_patch_size: 2,
    },
    rope_scaling: { type: 'mrope', mrope_section: section },
  };
}
