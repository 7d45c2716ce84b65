// Choosing the next token from logits: greedy, or sampling with temperature, top-k and top-p (the
// warpers of Hugging Face transformers, in that order), by the native `sampleTokens` op on the
// device of the logits (the rule: native/src/cpu/sampling.h). Draws are counter-based: a row's
// token depends only on its logits, its seed and the step, never on the other rows or the batch.
import type { TensorLike } from '@othink/native';
import { nativeOp } from '../tensor/ops/native.js';

export interface SamplingConfig {
  /** false: greedy (argmax). */
  doSample: boolean;
  /** Divides the logits (sampling only). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens, and every tie of the k-th (0: off). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1: off). */
  topP?: number;
}

/** A seeded uniform generator (mulberry32): reproducible data order, and its state can be saved. */
export class Random {
  constructor(public state: number) {
    this.state = state >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export function checkSamplingConfig(c: SamplingConfig): void {
  if (c.temperature !== undefined && !(c.temperature > 0 && Number.isFinite(c.temperature)))
    throw new RangeError(`temperature must be > 0 (got ${c.temperature})`);
  if (c.topK !== undefined && !(Number.isInteger(c.topK) && c.topK >= 0 && c.topK <= 2 ** 31 - 1))
    throw new RangeError(`topK must be an integer >= 0 (got ${c.topK})`);
  if (c.topP !== undefined && !(c.topP > 0 && c.topP <= 1))
    throw new RangeError(`topP must be in (0, 1] (got ${c.topP})`);
}

/** A Float32Array / Int32Array, or a tensor (a view of native memory) of that dtype on any device. */
type Buffer<A> = A | TensorLike;

/** The options of the native op (see native/src/bindings/ops_sampling.cc). */
export interface SampleTokensOptions {
  /** float32 [rows, vocabSize]. */
  logits: Buffer<Float32Array>;
  vocabSize: number;
  /** int32 [rows]: the chosen ids (rows is its length). */
  outIds: Buffer<Int32Array>;
  /** float32 [rows]: log softmax(logits / T) at the chosen ids, before top-k / top-p (greedy: T = 1). */
  outLogprobs: Buffer<Float32Array>;
  doSample?: boolean;
  /** One value for every row, or one per row. */
  temperature?: number | Buffer<Float32Array>;
  topK?: number | Buffer<Int32Array>;
  topP?: number | Buffer<Float32Array>;
  /** int32 [rows, 2]: the low and high 32 bits of each row's seed (see seedWords). */
  seeds?: Buffer<Int32Array>;
  /** The draw counter (the decoding step): an integer in [0, 2^53). */
  step?: number;
  suppressIds?: Buffer<Int32Array>;
  /** int32 [rows], in / out: finished rows get padId; choosing one of stopIds finishes a row. */
  done?: Buffer<Int32Array>;
  stopIds?: Buffer<Int32Array>;
  padId?: number;
}

/** The native sampler: writes outIds and outLogprobs, on the device of its buffers. */
export const sampleTokens = nativeOp<(o: SampleTokensOptions) => void>('sampleTokens');

const MASK64 = (1n << 64n) - 1n;

/** SplitMix64's finaliser (Steele et al. 2014): a bijective mix of 64 bits. */
function mix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * A seed for one completion from integer parts, e.g. (run seed, step, global prompt index,
 * generation index): a SplitMix64 hash of the parts in order, cut to 53 bits (an exact number).
 * Distinct parts give unrelated seeds; the same parts the same seed on any machine.
 */
export function completionSeed(...parts: number[]): number {
  let h = 0x6f7468696e6bn; // any fixed start
  for (const [i, p] of parts.entries()) {
    if (!Number.isSafeInteger(p) || p < 0)
      throw new RangeError(`completionSeed: part ${i} must be an integer in [0, 2^53) (got ${p})`);
    h = mix64(h ^ BigInt(p));
  }
  return Number(h >> 11n);
}

/** Seeds (integers in [0, 2^53)) as the op's int32 [rows, 2] words: low 32 bits, then high. */
export function seedWords(seeds: ArrayLike<number>): Int32Array {
  const words = new Int32Array(2 * seeds.length);
  for (let r = 0; r < seeds.length; r++) {
    const s = seeds[r];
    if (!Number.isSafeInteger(s) || s < 0)
      throw new RangeError(`seeds[${r}] must be an integer in [0, 2^53) (got ${s})`);
    words[2 * r] = (s % 2 ** 32) | 0;
    words[2 * r + 1] = Math.floor(s / 2 ** 32) | 0;
  }
  return words;
}

/**
 * The next token from one row of logits [V] on the CPU, and its log-probability under
 * softmax(logits / T) before top-k / top-p (greedy: T = 1). `seed` and `step` pick the draw.
 */
export function sampleToken(
  logits: Float32Array,
  config: SamplingConfig,
  draw: { seed: number; step: number } = { seed: 0, step: 0 },
): { token: number; logprob: number } {
  checkSamplingConfig(config);
  const outIds = new Int32Array(1);
  const outLogprobs = new Float32Array(1);
  sampleTokens({
    logits,
    vocabSize: logits.length,
    outIds,
    outLogprobs,
    doSample: config.doSample,
    temperature: config.temperature,
    topK: config.topK,
    topP: config.topP,
    seeds: seedWords([draw.seed]),
    step: draw.step,
  });
  return { token: outIds[0], logprob: outLogprobs[0] };
}
