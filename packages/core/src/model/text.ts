// The Qwen2 decoder with M-RoPE (spec section 3): pre-norm layers of GQA attention and a SiLU-gated
// MLP, and the final RMSNorm.
import { checkpoint } from '../tensor/checkpoint.js';
import { swiglu } from '../tensor/ops/activation.js';
import { add } from '../tensor/ops/arithmetic.js';
import { attention } from '../tensor/ops/attention.js';
import { linear } from '../tensor/ops/matmul.js';
import { rmsNorm } from '../tensor/ops/norm.js';
import { rotary } from '../tensor/ops/rotary.js';
import { writeSlice } from '../tensor/ops/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { type Qwen2VLTextConfig, textHeadDim } from './config.js';

/**
 * Keys and values of one layer for decoding with a cache: buffers [B, capacity, Hkv, D] allocated
 * on first use whose first `length` positions are filled (decoding steps attend over the whole
 * buffer: the key mask, [B, capacity], hides the unwritten tail).
 */
export interface LayerCache {
  k: Tensor | null;
  v: Tensor | null;
  capacity: number;
  length: number;
}

export interface DecoderInputs {
  /** [B, S, H] input embeddings. */
  hidden: Tensor;
  /** M-RoPE tables [B, S, head_dim]. */
  cos: Tensor;
  sin: Tensor;
  /** [B, past + S] int32, 1 = attend (left padding is 0). */
  keyMask?: Tensor;
}

export class Qwen2Decoder {
  constructor(
    readonly config: Qwen2VLTextConfig,
    private readonly p: (name: string) => Tensor,
  ) {}

  /**
   * Runs every layer and the final norm; `hiddenStates` (if given) collects each layer's output.
   * `gradientCheckpointing` recomputes each layer in backward instead of keeping its activations.
   */
  forward(
    inputs: DecoderInputs,
    options: { hiddenStates?: Tensor[]; cache?: LayerCache[]; gradientCheckpointing?: boolean } = {},
  ): Tensor {
    // Recomputing a layer would write its keys and values into the cache a second time.
    if (options.gradientCheckpointing && options.cache)
      throw new Error('gradientCheckpointing is for training forwards: it cannot be used with a KV cache');
    let h = inputs.hidden;
    for (let l = 0; l < this.config.numHiddenLayers; l++) {
      h = options.gradientCheckpointing
        ? checkpoint(
            (x, cos, sin, keyMask) => this.layer(l, x, { hidden: x, cos, sin, keyMask }),
            [h, inputs.cos, inputs.sin, inputs.keyMask],
          )
        : this.layer(l, h, inputs, options.cache?.[l]);
      options.hiddenStates?.push(h);
    }
    return rmsNorm(h, this.p('model.norm.weight'), this.config.rmsNormEps);
  }

  private layer(l: number, h: Tensor, inputs: DecoderInputs, cache?: LayerCache): Tensor {
    const c = this.config;
    const pre = `model.layers.${l}.`;
    const [b, s] = h.shape;
    const d = textHeadDim(c);
    const x = rmsNorm(h, this.p(`${pre}input_layernorm.weight`), c.rmsNormEps);
    const proj = (name: string, heads: number) =>
      linear(x, this.p(`${pre}self_attn.${name}.weight`), this.p(`${pre}self_attn.${name}.bias`)).reshape([
        b,
        s,
        heads,
        d,
      ]);
    const q = rotary(proj('q_proj', c.numAttentionHeads), inputs.cos, inputs.sin);
    let k = rotary(proj('k_proj', c.numKeyValueHeads), inputs.cos, inputs.sin);
    let v = proj('v_proj', c.numKeyValueHeads);
    // The cache keeps keys already rotated (spec 3.3); this step's are appended.
    if (cache) [k, v] = appendToBuffers(cache, k, v);
    const o = attention(q, k, v, { causal: true, keyMask: inputs.keyMask }).reshape([b, s, c.hiddenSize]);
    h = add(h, linear(o, this.p(`${pre}self_attn.o_proj.weight`)));
    const y = rmsNorm(h, this.p(`${pre}post_attention_layernorm.weight`), c.rmsNormEps);
    const gate = linear(y, this.p(`${pre}mlp.gate_proj.weight`));
    const up = linear(y, this.p(`${pre}mlp.up_proj.weight`));
    return add(h, linear(swiglu(gate, up), this.p(`${pre}mlp.down_proj.weight`)));
  }
}

/** Writes k / v [B, S, Hkv, D] at the cache's length; returns what attention reads. */
function appendToBuffers(cache: LayerCache, k: Tensor, v: Tensor): [Tensor, Tensor] {
  const [b, s, heads, d] = k.shape;
  const { capacity, length: past } = cache;
  if (past + s > capacity)
    throw new RangeError(`KV cache: ${past} + ${s} positions exceed its capacity ${capacity}`);
  cache.k ??= Tensor.zeros([b, capacity, heads, d], { device: k.device });
  cache.v ??= Tensor.zeros([b, capacity, heads, d], { device: v.device });
  writeSlice(k, cache.k, 1, past);
  writeSlice(v, cache.v, 1, past);
  cache.length = past + s;
  // The prefill attends over its own keys (causal within the prompt); later steps over the buffer.
  return past === 0 ? [k, v] : [cache.k, cache.v];
}
