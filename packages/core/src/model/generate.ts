// Batched generation with a KV cache (spec section 3.6, decoding steps): prefill the left-padded
// prompts once, then feed one token per step at position c + rope_delta (c counts the padded
// length), until every row has produced a stop token or maxNewTokens. Everything per step stays on
// the model's device (logits, the choice of the tokens, their log-probs, the finished flags) except
// the chosen ids [B], which the host reads to fill the outputs and to stop early; the log-probs
// come back once at the end.
import { noGrad } from '../tensor/autograd.js';
import { embedding } from '../tensor/ops/embedding.js';
import { narrow } from '../tensor/ops/shape.js';
import { keep, tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import type { Qwen2VLForConditionalGeneration, Qwen2VLInputs } from './qwen2vl.js';
import {
  checkSamplingConfig,
  completionSeed,
  type SamplingConfig,
  sampleTokens,
  seedWords,
} from './sampling.js';
import type { LayerCache } from './text.js';

export interface GenerationConfig extends SamplingConfig {
  maxNewTokens: number;
  /** Ids that end a completion (default: the config's eos ids). The stop token is included. */
  stopTokenIds?: number[];
  /** Id written after a row has stopped (default: the first stop id). */
  padTokenId?: number;
  /**
   * Seed of the draws when `seeds` is not given (ignored when greedy): row r draws with
   * completionSeed(seed, r). Default 0.
   */
  seed?: number;
  /**
   * One seed per row (integers in [0, 2^53)), e.g. completionSeed(runSeed, step, global prompt
   * index, generation index): a row's completion then depends only on its prompt and its seed, not
   * on the rows batched with it nor on how many processes share the work.
   */
  seeds?: ArrayLike<number>;
  /** Stop early when every row has stopped (default true; false: exactly maxNewTokens, like the fixtures). */
  stopWhenAllDone?: boolean;
  /**
   * Ids never generated (as if their logits were -inf). Always includes the config's image and
   * video placeholder ids: a generated <|image_pad|> would not match any image features when the
   * completion is fed back (training forward passes, multi-turn prompts).
   */
  suppressTokenIds?: number[];
  /** Called with the step's logits [B, V], read back from the device (tests, debugging). */
  onStepLogits?: (step: number, logits: Float32Array) => void;
}

export interface GenerationOutput {
  /** [B, n] generated ids (pad after a row's stop token). */
  completionIds: Int32Array;
  /**
   * [B, n] log-prob of each generated token under softmax(logits / T) over the ids that can be
   * generated, before top-k / top-p (greedy: T = 1); 0 after a row's stop token.
   */
  logprobs: Float32Array;
  /** [B, n] 1 up to and including the first stop token. */
  completionMask: Int32Array;
  /** [B, S + n] prompt and completion. */
  sequences: Int32Array;
  /** n: generated length (<= maxNewTokens). */
  length: number;
  ropeDeltas: Int32Array;
}

/** The seed of each row: config.seeds, or completionSeed(config.seed, row). */
function rowSeeds(config: GenerationConfig, rows: number): number[] {
  if (config.seeds !== undefined) {
    if (config.seeds.length !== rows)
      throw new RangeError(`generate: seeds has ${config.seeds.length} values for ${rows} rows`);
    return Array.from(config.seeds);
  }
  const seed = config.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`generate: seed must be an integer in [0, 2^53) (got ${seed})`);
  return Array.from({ length: rows }, (_, r) => completionSeed(seed, r));
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
  const vocab = model.config.text.vocabSize;
  const seeds = config.doSample ? seedWords(rowSeeds(config, b)) : undefined;
  const completionIds = new Int32Array(b * n).fill(pad);
  const logprobs = new Float32Array(b * n);
  const completionMask = new Int32Array(b * n);
  const done = new Uint8Array(b); // the host's copy of the device's finished flags
  const mask = inputs.attentionMask ?? new Int32Array(b * s).fill(1);
  const table = model.params.get('model.embed_tokens.weight')!;
  const device = table.device;
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
    // Device tensors that live for the whole loop (freed in `finally`).
    const owned: Tensor[] = [];
    let stepLogits: Tensor | undefined;
    const own = <T extends Tensor>(t: T): T => {
      owned.push(t);
      return t;
    };
    try {
      const int32 = (values: Int32Array) =>
        own(Tensor.from(values, [values.length], { dtype: 'int32', device }));
      const suppressed = [
        ...new Set([
          model.config.imageTokenId,
          model.config.videoTokenId,
          ...(config.suppressTokenIds ?? []),
        ]),
      ].filter((id) => id >= 0 && id < vocab);
      // Stop ids outside the vocabulary can never be chosen: the device list leaves them out.
      const inVocab = [...stop].filter((id) => id >= 0 && id < vocab);
      const sampling = {
        vocabSize: vocab,
        doSample: config.doSample,
        temperature: config.temperature,
        topK: config.topK,
        topP: config.topP,
        seeds: seeds && int32(seeds),
        suppressIds: suppressed.length > 0 ? int32(Int32Array.from(suppressed)) : undefined,
        done: own(Tensor.zeros([b], { dtype: 'int32', device })),
        stopIds: inVocab.length > 0 ? int32(Int32Array.from(inVocab)) : undefined,
        padId: pad,
      };
      const ids = own(Tensor.empty([b], { dtype: 'int32', device }));
      // Row k: the log-probs of step k, written by the sampler, read once after the loop.
      const stepLogprobs = own(Tensor.empty([n, b], { device }));

      stepLogits = tidy(() => {
        const { embeds, positionIds, ropeDeltas: deltas } = model.embed({ ...inputs, attentionMask: mask });
        ropeDeltas = deltas;
        const keyMask = Tensor.from(mask, [b, s], { dtype: 'int32', device });
        const hidden = model.decode(embeds, positionIds, keyMask, cache);
        for (const c of cache) keepCache(c);
        return model.logits(narrow(hidden, 1, s - 1, 1));
      });
      // [B, capacity]: the prompt's mask, then 1 for each fed-back token, 0 for the unwritten tail.
      const keyMask = new Int32Array(b * capacity);
      for (let row = 0; row < b; row++) keyMask.set(mask.subarray(row * s, (row + 1) * s), row * capacity);
      for (let step = 0; step < n; step++) {
        if (config.onStepLogits) config.onStepLogits(step, stepLogits.toFloat32Array());
        sampleTokens({
          ...sampling,
          logits: stepLogits,
          step,
          outIds: ids,
          outLogprobs: { storage: stepLogprobs.storage, offset: step * b, size: b, dtype: 'float32' },
        });
        stepLogits.dispose();
        // The one read of the step: the chosen ids (the pad for rows that had stopped).
        const next = ids.toTypedArray() as Int32Array;
        for (let row = 0; row < b; row++) {
          if (done[row]) continue;
          const token = next[row];
          if (token < 0) {
            throw new Error(
              `generate: step ${step}, row ${row}: no token to choose (the logits hold NaN or +inf, or every id is suppressed)`,
            );
          }
          completionIds[row * n + step] = token;
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
          const embeds = embedding(ids.reshape([b, 1]), table);
          const km = Tensor.from(keyMask, [b, capacity], { dtype: 'int32', device });
          const hidden = model.decode(embeds, positions, km, cache);
          return model.logits(hidden);
        });
      }
      const all = stepLogprobs.toFloat32Array();
      for (let row = 0; row < b; row++)
        for (let k = 0; k < length; k++) logprobs[row * n + k] = all[k * b + row];
    } finally {
      stepLogits?.dispose();
      for (const t of owned) t.dispose();
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

function keepCache(c: LayerCache): void {
  if (c.k) keep(c.k);
  if (c.v) keep(c.v);
}
