// Batched generation with a KV cache (spec section 3.6, decoding steps): prefill the left-padded
// prompts once, then feed one token per step at position c + rope_delta (c counts the padded
// length), until every row has produced a stop token or maxNewTokens.
import { tokenLogprobs } from '@othink/native';
import { noGrad } from '../tensor/autograd.js';
import { embedding } from '../tensor/ops/embedding.js';
import { narrow } from '../tensor/ops/shape.js';
import { keep, tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import type { Qwen2VLForConditionalGeneration, Qwen2VLInputs } from './qwen2vl.js';
import { checkSamplingConfig, Random, type SamplingConfig, sampleToken } from './sampling.js';
import type { LayerCache } from './text.js';

export interface GenerationConfig extends SamplingConfig {
  maxNewTokens: number;
  /** Ids that end a completion (default: the config's eos ids). The stop token is included. */
  stopTokenIds?: number[];
  /** Id written after a row has stopped (default: the first stop id). */
  padTokenId?: number;
  /** Seed of the sampling generator (ignored when greedy). */
  seed?: number;
  /** Stop early when every row has stopped (default true; false: exactly maxNewTokens, like the fixtures). */
  stopWhenAllDone?: boolean;
  /**
   * Ids never generated (their logits are set to -inf). Always includes the config's image and
   * video placeholder ids: a generated <|image_pad|> would not match any image features when the
   * completion is fed back (training forward passes, multi-turn prompts).
   */
  suppressTokenIds?: number[];
  /** Called with the step's logits [B, V] (tests, debugging). */
  onStepLogits?: (step: number, logits: Float32Array) => void;
}

export interface GenerationOutput {
  /** [B, n] generated ids (pad after a row's stop token). */
  completionIds: Int32Array;
  /** [B, n] log-prob of each generated token under the distribution it was drawn from. */
  logprobs: Float32Array;
  /** [B, n] 1 up to and including the first stop token. */
  completionMask: Int32Array;
  /** [B, S + n] prompt and completion. */
  sequences: Int32Array;
  /** n: generated length (<= maxNewTokens). */
  length: number;
  ropeDeltas: Int32Array;
}

export function generate(
  model: Qwen2VLForConditionalGeneration,
  inputs: Qwen2VLInputs,
  config: GenerationConfig,
): GenerationOutput {
  checkSamplingConfig(config);
  if (!Number.isInteger(config.maxNewTokens) || config.maxNewTokens < 1) {
    throw new RangeError(`maxNewTokens must be a positive integer (got ${config.maxNewTokens})`);
  }
  const stop = new Set(config.stopTokenIds ?? model.config.eosTokenIds);
  if (stop.size === 0)
    throw new Error('generate: no stop tokens (give stopTokenIds or set eos_token_id in config.json)');
  const pad = config.padTokenId ?? [...stop][0];
  const { batch: b, seqLen: s } = inputs;
  const n = config.maxNewTokens;
  const rand = new Random(config.seed ?? 0);
  const completionIds = new Int32Array(b * n).fill(pad);
  const logprobs = new Float32Array(b * n);
  const completionMask = new Int32Array(b * n);
  const done = new Uint8Array(b);
  const mask = inputs.attentionMask ?? new Int32Array(b * s).fill(1);
  const vocab = model.config.text.vocabSize;
  let length = 0;
  let ropeDeltas: Int32Array = new Int32Array(b);

  noGrad(() => {
    // Keys and values go into buffers sized for the prompt and every new token (no per-step copies).
    const capacity = s + n;
    const cache: LayerCache[] = Array.from({ length: model.config.text.numHiddenLayers }, () => ({
      k: null,
      v: null,
      capacity,
      length: 0,
    }));
    try {
      let stepLogits = tidy(() => {
        const { embeds, positionIds, ropeDeltas: deltas } = model.embed({ ...inputs, attentionMask: mask });
        ropeDeltas = deltas;
        const keyMask = Tensor.from(mask, [b, s], { dtype: 'int32' });
        const hidden = model.decode(embeds, positionIds, keyMask, cache);
        for (const c of cache) keepCache(c);
        return model.logits(narrow(hidden, 1, s - 1, 1)).toFloat32Array();
      });
      // [B, capacity]: the prompt's mask, then 1 for each fed-back token, 0 for the unwritten tail.
      const keyMask = new Int32Array(b * capacity);
      for (let row = 0; row < b; row++) keyMask.set(mask.subarray(row * s, (row + 1) * s), row * capacity);
      const suppressed = [
        ...new Set([
          model.config.imageTokenId,
          model.config.videoTokenId,
          ...(config.suppressTokenIds ?? []),
        ]),
      ].filter((id) => id >= 0 && id < vocab);
      for (let step = 0; step < n; step++) {
        config.onStepLogits?.(step, stepLogits);
        for (let row = 0; row < b; row++)
          for (const id of suppressed) stepLogits[row * vocab + id] = Number.NEGATIVE_INFINITY;
        const next = new Int32Array(b);
        // Greedy: the argmax of each row in JS (one compare per logit), then the log-probs of the
        // picks in one native pass over [B, V] (SIMD log-sum-exp instead of a JS exp per logit).
        const greedy = config.doSample ? null : greedyTokens(stepLogits, b, vocab);
        for (let row = 0; row < b; row++) {
          if (done[row]) {
            next[row] = pad;
            continue;
          }
          const { token, logprob } = greedy
            ? { token: greedy.tokens[row], logprob: greedy.logprobs[row] }
            : sampleToken(stepLogits.subarray(row * vocab, (row + 1) * vocab), config, rand);
          next[row] = token;
          completionIds[row * n + step] = token;
          logprobs[row * n + step] = logprob;
          completionMask[row * n + step] = 1;
          if (stop.has(token)) done[row] = 1;
        }
        length = step + 1;
        if (step === n - 1 || ((config.stopWhenAllDone ?? true) && done.every((d) => d === 1))) break;
        // Feed the tokens back at cache position c = s + step, all three M-RoPE components c + delta.
        const c = s + step;
        const positions = new Int32Array(3 * b);
        for (let comp = 0; comp < 3; comp++)
          for (let row = 0; row < b; row++) positions[comp * b + row] = c + ropeDeltas[row];
        for (let row = 0; row < b; row++) keyMask[row * capacity + c] = 1;
        stepLogits = tidy(() => {
          const ids = Tensor.from(next, [b, 1], { dtype: 'int32' });
          const embeds = embedding(ids, model.params.get('model.embed_tokens.weight')!);
          const km = Tensor.from(keyMask, [b, capacity], { dtype: 'int32' });
          const hidden = model.decode(embeds, positions, km, cache);
          return model.logits(hidden).toFloat32Array();
        });
      }
    } finally {
      for (const l of cache) {
        l.k?.dispose();
        l.v?.dispose();
      }
    }
  });

  // Trim to the generated length.
  const trim = <T extends Int32Array | Float32Array>(a: T, make: (k: number) => T): T => {
    const out = make(b * length);
    for (let row = 0; row < b; row++) out.set(a.subarray(row * n, row * n + length), row * length);
    return out;
  };
  const ids = trim(completionIds, (k) => new Int32Array(k));
  const sequences = new Int32Array(b * (s + length));
  for (let row = 0; row < b; row++) {
    sequences.set(inputs.inputIds.subarray(row * s, (row + 1) * s), row * (s + length));
    sequences.set(ids.subarray(row * length, (row + 1) * length), row * (s + length) + s);
  }
  return {
    completionIds: ids,
    logprobs: trim(logprobs, (k) => new Float32Array(k)),
    completionMask: trim(completionMask, (k) => new Int32Array(k)),
    sequences,
    length,
    ropeDeltas,
  };
}

/** Argmax of each row of logits [B, V] (first on ties) and its log-softmax. */
function greedyTokens(logits: Float32Array, b: number, vocab: number) {
  const tokens = new Int32Array(b);
  for (let row = 0; row < b; row++) {
    const off = row * vocab;
    let best = off;
    for (let i = off + 1; i < off + vocab; i++) if (logits[i] > logits[best]) best = i;
    tokens[row] = best - off;
  }
  const { logprobs } = tokenLogprobs({ logits, targets: tokens, vocabSize: vocab });
  return { tokens, logprobs };
}

function keepCache(c: LayerCache): void {
  if (c.k) keep(c.k);
  if (c.v) keep(c.v);
}
