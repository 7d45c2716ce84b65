// The parameters of Qwen2-VL by their Hugging Face names (original hub layout, spec section 7.1),
// with the shapes a config implies.
import type { Qwen2VLConfig } from './config.js';
import { textHeadDim } from './config.js';

export type ParameterShapes = Map<string, number[]>;

/** Every parameter name (hub layout) and shape for a config; lm_head only when not tied. */
export function parameterShapes(c: Qwen2VLConfig): ParameterShapes {
  const shapes: ParameterShapes = new Map();
  const v = c.vision;
  const e = v.embedDim;
  const mlp = Math.round(e * v.mlpRatio);
  const mergeIn = e * v.spatialMergeSize * v.spatialMergeSize;
  shapes.set('visual.patch_embed.proj.weight', [
    e,
    v.inChannels,
    v.temporalPatchSize,
    v.patchSize,
    v.patchSize,
  ]);
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}.`;
    shapes.set(`${p}norm1.weight`, [e]);
    shapes.set(`${p}norm1.bias`, [e]);
    shapes.set(`${p}norm2.weight`, [e]);
    shapes.set(`${p}norm2.bias`, [e]);
    shapes.set(`${p}attn.qkv.weight`, [3 * e, e]);
    shapes.set(`${p}attn.qkv.bias`, [3 * e]);
    shapes.set(`${p}attn.proj.weight`, [e, e]);
    shapes.set(`${p}attn.proj.bias`, [e]);
    shapes.set(`${p}mlp.fc1.weight`, [mlp, e]);
    shapes.set(`${p}mlp.fc1.bias`, [mlp]);
    shapes.set(`${p}mlp.fc2.weight`, [e, mlp]);
    shapes.set(`${p}mlp.fc2.bias`, [e]);
  }
  shapes.set('visual.merger.ln_q.weight', [e]);
  shapes.set('visual.merger.ln_q.bias', [e]);
  shapes.set('visual.merger.mlp.0.weight', [mergeIn, mergeIn]);
  shapes.set('visual.merger.mlp.0.bias', [mergeIn]);
  shapes.set('visual.merger.mlp.2.weight', [v.hiddenSize, mergeIn]);
  shapes.set('visual.merger.mlp.2.bias', [v.hiddenSize]);

  const t = c.text;
  const h = t.hiddenSize;
  const kv = t.numKeyValueHeads * textHeadDim(t);
  shapes.set('model.embed_tokens.weight', [t.vocabSize, h]);
  for (let l = 0; l < t.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    shapes.set(`${p}input_layernorm.weight`, [h]);
    shapes.set(`${p}self_attn.q_proj.weight`, [h, h]);
    shapes.set(`${p}self_attn.q_proj.bias`, [h]);
    shapes.set(`${p}self_attn.k_proj.weight`, [kv, h]);
    shapes.set(`${p}self_attn.k_proj.bias`, [kv]);
    shapes.set(`${p}self_attn.v_proj.weight`, [kv, h]);
    shapes.set(`${p}self_attn.v_proj.bias`, [kv]);
    shapes.set(`${p}self_attn.o_proj.weight`, [h, h]);
    shapes.set(`${p}post_attention_layernorm.weight`, [h]);
    shapes.set(`${p}mlp.gate_proj.weight`, [t.intermediateSize, h]);
    shapes.set(`${p}mlp.up_proj.weight`, [t.intermediateSize, h]);
    shapes.set(`${p}mlp.down_proj.weight`, [h, t.intermediateSize]);
  }
  shapes.set('model.norm.weight', [h]);
  if (!t.tieWordEmbeddings) shapes.set('lm_head.weight', [t.vocabSize, h]);
  return shapes;
}

/**
 * The names a parameter may have in a checkpoint: the hub layout (`visual.*`, `model.*`) and the
 * transformers >= 4.52 layout (`model.visual.*`, `model.language_model.*`), spec section 7.2.
 */
export function checkpointNames(name: string): string[] {
  if (name.startsWith('visual.')) return [name, `model.${name}`];
  if (name.startsWith('model.')) return [name, `model.language_model.${name.slice('model.'.length)}`];
  return [name];
}
