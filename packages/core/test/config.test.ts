import { tinyConfig } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { parseQwen2VLConfig } from '../src/model/config.js';

const tiny = tinyConfig();

/** Qwen2-VL-2B-Instruct's config.json as on the hub (qwen2vl-spec.md section 1). */
const qwen2vl2b = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  vocab_size: 151936,
  hidden_size: 1536,
  intermediate_size: 8960,
  num_hidden_layers: 28,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  tie_word_embeddings: true,
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  image_token_id: 151655,
  video_token_id: 151656,
  vision_config: {
    depth: 32,
    embed_dim: 1280,
    mlp_ratio: 4,
    num_heads: 16,
    in_chans: 3,
    hidden_size: 1536,
    patch_size: 14,
    spatial_merge_size: 2,
    spatial_patch_size: 14,
    temporal_patch_size: 2,
  },
};

describe('Qwen2-VL config', () => {
  it('reads the tiny fixture config (flat hub layout)', () => {
    const c = parseQwen2VLConfig(tiny);
    // Every field from its hub name in the fixture's config.json (whatever set is in use).
    expect(c.text).toMatchObject({
      vocabSize: tiny.vocab_size,
      hiddenSize: tiny.hidden_size,
      numHiddenLayers: tiny.num_hidden_layers,
      numAttentionHeads: tiny.num_attention_heads,
      numKeyValueHeads: tiny.num_key_value_heads,
      mropeSection: tiny.rope_scaling.mrope_section,
      tieWordEmbeddings: tiny.tie_word_embeddings,
      ropeTheta: tiny.rope_theta,
    });
    const v = tiny.vision_config;
    expect(c.vision).toMatchObject({
      depth: v.depth,
      embedDim: v.embed_dim,
      numHeads: v.num_heads,
      hiddenSize: v.hidden_size,
      patchSize: v.patch_size,
      spatialMergeSize: v.spatial_merge_size,
    });
    expect(c.imageTokenId).toBe(tiny.image_token_id);
    expect(c.eosTokenIds).toEqual([tiny.eos_token_id]);
  });

  it('reads the 2B config and the text_config / rope_parameters layouts the same way', () => {
    const flat = parseQwen2VLConfig(qwen2vl2b);
    expect(flat.text.intermediateSize).toBe(8960);
    const {
      vocab_size,
      hidden_size,
      intermediate_size,
      num_hidden_layers,
      num_attention_heads,
      num_key_value_heads,
      rope_theta,
      rope_scaling,
      ...rest
    } = qwen2vl2b;
    const nested = parseQwen2VLConfig({
      ...rest,
      text_config: {
        model_type: 'qwen2_vl_text',
        vocab_size,
        hidden_size,
        intermediate_size,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads,
        rope_parameters: { rope_type: 'default', rope_theta, mrope_section: rope_scaling.mrope_section },
      },
    });
    expect(nested.text).toEqual(flat.text);
    expect(nested.vision).toEqual(flat.vision);
  });

  it('errors are readable and name the field', () => {
    expect(() => parseQwen2VLConfig({ ...tiny, model_type: 'llama' })).toThrow(/model_type is "llama"/);
    expect(() => parseQwen2VLConfig({ ...tiny, hidden_size: 65 })).toThrow(
      /hidden_size 65 is not a multiple of num_attention_heads 4/,
    );
    expect(() =>
      parseQwen2VLConfig({ ...tiny, rope_scaling: { type: 'mrope', mrope_section: [3, 3, 3] } }),
    ).toThrow(/must add up to head_dim \/ 2 = 8/);
    expect(() =>
      parseQwen2VLConfig({ ...tiny, vision_config: { ...tiny.vision_config, hidden_size: 3584 } }),
    ).toThrow(/vision_config.hidden_size 3584 \(merger output\) must equal the LLM hidden_size 64/);
    expect(() => parseQwen2VLConfig({ ...tiny, num_hidden_layers: 0 })).toThrow(
      /"num_hidden_layers" must be an integer >= 1 \(got 0\)/,
    );
    const { vision_config: _, ...noVision } = tiny;
    expect(() => parseQwen2VLConfig(noVision, 'x/config.json')).toThrow(
      /x\/config.json: missing "vision_config"/,
    );
  });
});
