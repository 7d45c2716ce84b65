// The native token sampler (ops.sampleTokens, rule in native/src/cpu/sampling.h) against an
// independent reference written here from the definitions of Hugging Face transformers' warpers
// (TemperatureLogitsWarper, then TopKLogitsWarper, then TopPLogitsWarper, in float64 with full
// sorts), and against hand-worked cases. The op's draw is the inverse CDF of the truncated
// distribution in index order at u = Philox4x32-10(seed, step) / 2^64; the reference recomputes u
// with its own Philox (checked against Random123's known-answer vectors), so every draw is compared
// exactly, not only in distribution. Tolerances, and why:
// - ids: exact. The op decides with integer weights floor(p * 2^F) (F = 45 at V = 151936), the
//   reference with float64 probabilities: they can disagree only when u falls within ~V * 2^-F of
//   a boundary of the CDF; the cases below have no boundary that close to their draws.
// - log-probs: both are log softmax(x / T) computed in double; the op rounds once to float32:
//   rtol 2^-23 (one float32 rounding), atol 1e-12 (log-probs near 0).
// - distribution: chi-square over many seeds, at significance 1e-6 (critical value by
//   Wilson-Hilferty); the seeds are fixed, so the test is deterministic.
// The GPU suite checks the CUDA kernel against the same reference and against the CPU kernel:
// identical ids for identical seeds (the logits here have gaps far above float rounding).
import * as native from '@othink/native';
import { describeGpu, expectClose, randomNormal, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { Tensor, tidy } from '../src/index.js';
import {
  completionSeed,
  type SampleTokensOptions,
  sampleToken,
  sampleTokens,
  seedWords,
} from '../src/model/sampling.js';

const LOGPROB_TOL = { rtol: 2 ** -23, atol: 1e-12 };

// ---- Philox4x32-10 (Salmon et al. 2011), written from the paper's round function.

function philox4x32_10(ctr: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = ctr;
  let [k0, k1] = key;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + 0x9e3779b9) >>> 0;
      k1 = (k1 + 0xbb67ae85) >>> 0;
    }
    const p0 = 0xd2511f53n * BigInt(c0);
    const p1 = 0xcd9e8d57n * BigInt(c2);
    const [hi0, lo0] = [Number(p0 >> 32n), Number(p0 & 0xffffffffn)];
    const [hi1, lo1] = [Number(p1 >> 32n), Number(p1 & 0xffffffffn)];
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** The uniform of a row's draw: 64 bits of Philox(key = seed, counter = (step, 0)) / 2^64. */
function uniform(seed: number, step: number): number {
  const [x0, x1] = philox4x32_10(
    [step % 2 ** 32, Math.floor(step / 2 ** 32), 0, 0],
    [seed % 2 ** 32, Math.floor(seed / 2 ** 32)],
  );
  return Number((BigInt(x1) << 32n) | BigInt(x0)) / 2 ** 64;
}

// ---- the reference: HF's warpers, literally, in float64.

interface Warp {
  doSample: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  suppress?: number[];
}

interface Reference {
  /** log softmax of the (temperature-scaled, suppressed) scores, before top-k / top-p. */
  logp: Float64Array;
  /** The truncated distribution (0 outside the kept tokens). */
  q: Float64Array;
  /** The kept tokens with q > 0, in index order. */
  support: number[];
  /** The first index of the largest score (the greedy choice). */
  argmax: number;
}

function softmax(x: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]);
  const p = new Float64Array(x.length);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += p[i] = Math.exp(x[i] - max);
  for (let i = 0; i < x.length; i++) p[i] /= sum;
  return p;
}

function reference(logits: Float32Array, w: Warp): Reference {
  const v = logits.length;
  const suppressed = new Set(w.suppress ?? []);
  // TemperatureLogitsWarper: scores / T on float32 scores, a float32 division (torch computes a
  // float32 tensor divided by a Python float in float32; Math.fround of the double quotient of two
  // floats is the correctly rounded float32 quotient).
  const t = Math.fround(w.doSample ? (w.temperature ?? 1) : 1);
  const scores = Float64Array.from(logits, (x, i) =>
    suppressed.has(i) ? Number.NEGATIVE_INFINITY : Math.fround(x / t),
  );
  let argmax = 0;
  for (let i = 1; i < v; i++) if (scores[i] > scores[argmax]) argmax = i;
  const p = softmax(scores);
  const logp = p.map(Math.log);
  if (!w.doSample) {
    const q = new Float64Array(v);
    q[argmax] = 1;
    return { logp, q, support: [argmax], argmax };
  }
  const filtered = Float64Array.from(scores);
  // TopKLogitsWarper: remove scores < the k-th largest (ties of the k-th value stay).
  if (w.topK && w.topK > 0 && w.topK < v) {
    const kth = Array.from(scores).sort((a, b) => b - a)[w.topK - 1];
    for (let i = 0; i < v; i++) if (filtered[i] < kth) filtered[i] = Number.NEGATIVE_INFINITY;
  }
  // TopPLogitsWarper: sort ascending, remove where the cumulative probability is <= 1 - p, never
  // the last (most likely) one. Ties: the lower index ranks higher (later in ascending order).
  if (w.topP !== undefined && w.topP < 1) {
    const probs = softmax(filtered);
    const ascending = Array.from({ length: v }, (_, i) => i).sort(
      (a, b) => filtered[a] - filtered[b] || b - a,
    );
    let cum = 0;
    const remove: number[] = [];
    for (const [j, i] of ascending.entries()) {
      cum += probs[i];
      if (cum <= 1 - w.topP && j < v - 1) remove.push(i);
    }
    for (const i of remove) filtered[i] = Number.NEGATIVE_INFINITY;
  }
  const q = softmax(filtered);
  const support = [...q.keys()].filter((i) => q[i] > 0);
  return { logp, q, support, argmax };
}

/** Inverse CDF of q in index order at u. */
function referenceDraw(ref: Reference, u: number): number {
  let cum = 0;
  for (const i of ref.support) {
    cum += ref.q[i];
    if (cum > u) return i;
  }
  return ref.support[ref.support.length - 1];
}

// ---- calling the op.

interface Call extends Warp {
  seeds?: number[];
  step?: number;
}

interface Sampled {
  ids: Int32Array;
  logprobs: Float32Array;
}

/** The op on `rows` rows of V logits (host arrays: the CPU kernel). */
function sampleRows(logits: Float32Array, vocab: number, c: Call): Sampled {
  const rows = logits.length / vocab;
  const outIds = new Int32Array(rows);
  const outLogprobs = new Float32Array(rows);
  sampleTokens({
    logits,
    vocabSize: vocab,
    outIds,
    outLogprobs,
    doSample: c.doSample,
    temperature: c.temperature,
    topK: c.topK,
    topP: c.topP,
    seeds: c.doSample ? seedWords(c.seeds ?? Array.from({ length: rows }, (_, r) => r)) : undefined,
    step: c.doSample ? (c.step ?? 0) : undefined,
    suppressIds: c.suppress ? Int32Array.from(c.suppress) : undefined,
  });
  return { ids: outIds, logprobs: outLogprobs };
}

/** The same row repeated for each seed. */
function repeatRow(row: Float32Array, times: number): Float32Array {
  const out = new Float32Array(row.length * times);
  for (let r = 0; r < times; r++) out.set(row, r * row.length);
  return out;
}

/** Draws of one row with seeds 0..n-1 at `step`, checked draw by draw against the reference. */
function checkDraws(row: Float32Array, w: Warp, n: number, step = 0, sample: typeof sampleRows = sampleRows) {
  const ref = reference(row, w);
  const seeds = Array.from({ length: n }, (_, i) => completionSeed(7, i));
  const { ids, logprobs } = sample(repeatRow(row, n), row.length, { ...w, seeds, step });
  const want = seeds.map((s) => referenceDraw(ref, uniform(s, step)));
  expect(Array.from(ids), JSON.stringify(w)).toEqual(want);
  expectClose(
    logprobs,
    want.map((i) => ref.logp[i]),
    LOGPROB_TOL,
    `log-probs ${JSON.stringify(w)}`,
  );
  return { ref, ids };
}

function f32(...x: number[]): Float32Array {
  return Float32Array.from(x);
}

/** Chi-square critical value at significance 1e-6 (Wilson-Hilferty; z = 4.753). */
function chiSquareCritical(df: number): number {
  const a = 2 / (9 * df);
  return df * (1 - a + 4.753 * Math.sqrt(a)) ** 3;
}

/** Counts of `ids` vs n * q over the support: the chi-square statistic and its degrees of freedom. */
function chiSquare(ids: Int32Array, ref: Reference) {
  const counts = new Map<number, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  let stat = 0;
  for (const i of ref.support)
    stat += ((counts.get(i) ?? 0) - ids.length * ref.q[i]) ** 2 / (ids.length * ref.q[i]);
  return { stat, df: ref.support.length - 1, outside: [...counts.keys()].filter((i) => !(ref.q[i] > 0)) };
}

/** A long row like Qwen2-VL's vocabulary: normal logits (std 3), optionally rounded to make ties. */
function longRow(seed: number, ties = false): Float32Array {
  const x = randomNormal(151936, seededRandom(seed), 3);
  if (ties) for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i] * 2) / 2;
  return x;
}

const LONG_CONFIGS: Warp[] = [
  { doSample: true },
  { doSample: true, topK: 50 },
  { doSample: true, topP: 0.9, temperature: 0.7 },
  { doSample: true, topK: 20, topP: 0.95, temperature: 1.3 },
  { doSample: true, topK: 1000, topP: 0.5 },
];

describe('the reference itself', () => {
  it('Philox4x32-10 gives Random123 known answers', () => {
    const hex = (x: number[]) => x.map((w) => w.toString(16).padStart(8, '0')).join(' ');
    expect(hex(philox4x32_10([0, 0, 0, 0], [0, 0]))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    const ones = 0xffffffff;
    expect(hex(philox4x32_10([ones, ones, ones, ones], [ones, ones]))).toBe(
      '408f276d 41c83b0e a20bc7c6 6d5451fd',
    );
    expect(
      hex(philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])),
    ).toBe('d16cfe09 94fdcceb 5001e420 24126ea1');
  });

  it('keeps what the warpers keep on hand-worked rows', () => {
    // top-k keeps every tie of the k-th value: [1, 3, 3, 2, 3] with k = 2 keeps the three 3s.
    expect(reference(f32(1, 3, 3, 2, 3), { doSample: true, topK: 2 }).support).toEqual([1, 2, 4]);
    // probabilities [0.5, 0.3, 0.15, 0.05]; top-k 3 renormalises to [.526, .316, .158]; top-p 0.8
    // keeps 0 (mass above 0) and 1 (mass above .526), not 2 (mass above .842).
    const p4 = f32(...[0.5, 0.3, 0.15, 0.05].map(Math.log));
    expect(reference(p4, { doSample: true, topK: 3, topP: 0.8 }).support).toEqual([0, 1]);
    expect(reference(p4, { doSample: true, topP: 0.85 }).support).toEqual([0, 1, 2]);
    // Two equal tokens and p = 0.5: the mass above the second is 0.5, not < 0.5: only the first.
    expect(reference(f32(0, 0), { doSample: true, topP: 0.5 }).support).toEqual([0]);
  });
});

describe('ops.sampleTokens on the CPU against the reference', () => {
  it('greedy: the first argmax, not a suppressed id; its log-prob at T = 1 whatever the temperature', () => {
    const logits = f32(1, 4, 2, 4, 3, /* row 2 */ 5, -1, 5, 0, 0);
    const { ids, logprobs } = sampleRows(logits, 5, { doSample: false, temperature: 0.5, suppress: [0] });
    expect(Array.from(ids)).toEqual([1, 2]); // row 1: id 0 suppressed, so the first 5 is id 2
    const r0 = reference(logits.subarray(0, 5), { doSample: false, suppress: [0] });
    const r1 = reference(logits.subarray(5), { doSample: false, suppress: [0] });
    expectClose(logprobs, [r0.logp[1], r1.logp[2]], LOGPROB_TOL, 'greedy log-probs');
    expect(logprobs[0]).toBeCloseTo(4 - Math.log(Math.exp(4) * 2 + Math.exp(2) + Math.exp(3)), 6);
  });

  it('hand-worked rows: ties, top-k = 1, tiny and full top-p, temperature, suppressed and -inf ids', () => {
    const n = 2000;
    const cases: { row: Float32Array; w: Warp; kept: number[] }[] = [
      { row: f32(1, 3, 3, 2, 3), w: { doSample: true, topK: 2 }, kept: [1, 2, 4] },
      { row: f32(2, 5, 5), w: { doSample: true, topK: 1 }, kept: [1, 2] }, // ties of the 1st stay
      { row: f32(2, 5, 4), w: { doSample: true, topK: 1 }, kept: [1] },
      { row: f32(0, 2, 2, 1), w: { doSample: true, topP: 1e-6 }, kept: [1] }, // lower index first
      { row: f32(0, 0), w: { doSample: true, topP: 0.5 }, kept: [0] },
      { row: f32(0, 0), w: { doSample: true, topP: 0.51 }, kept: [0, 1] },
      { row: f32(-3, 0, 1, -1), w: { doSample: true, topP: 1 }, kept: [0, 1, 2, 3] },
      {
        row: f32(...[0.5, 0.3, 0.15, 0.05].map(Math.log)),
        w: { doSample: true, topK: 3, topP: 0.8 },
        kept: [0, 1],
      },
      // T = 2 on [0, ln 4, ln 16]: probabilities [1, 2, 4] / 7.
      { row: f32(0, Math.log(4), Math.log(16)), w: { doSample: true, temperature: 2 }, kept: [0, 1, 2] },
      { row: f32(1, 9, 2, 3), w: { doSample: true, suppress: [1], temperature: 3 }, kept: [0, 2, 3] },
      {
        row: f32(Number.NEGATIVE_INFINITY, 1, Number.NEGATIVE_INFINITY, 1.5),
        w: { doSample: true, topK: 3 },
        kept: [1, 3],
      },
    ];
    for (const { row, w, kept } of cases) {
      const { ref, ids } = checkDraws(row, w, n);
      expect(ref.support, `reference support ${JSON.stringify(w)}`).toEqual(kept);
      // Every kept token has probability >= 0.012: each appears in 2000 draws (else p < e^-24).
      expect(
        [...new Set(ids)].sort((a, b) => a - b),
        `drawn ${JSON.stringify(w)}`,
      ).toEqual(kept);
    }
    // T = 2 log-prob by hand: ln(4 / 7) for id 2.
    const t2 = sampleRows(repeatRow(f32(0, Math.log(4), Math.log(16)), 200), 3, {
      doSample: true,
      temperature: 2,
      seeds: Array.from({ length: 200 }, (_, i) => i),
    });
    const at2 = t2.ids.indexOf(2);
    expect(t2.logprobs[at2]).toBeCloseTo(Math.log(4 / 7), 6);
  });

  it('rows of 151936 logits: every draw as the reference, with and without ties', () => {
    for (const [k, w] of LONG_CONFIGS.entries()) {
      for (const ties of [false, true]) {
        checkDraws(longRow(100 + k, ties), w, 12, 3 + k);
      }
    }
  });

  it('draws follow the truncated softmax (chi-square over seeds, and over steps of one seed)', () => {
    const row = f32(...Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.7) * 2));
    const w: Warp = { doSample: true, temperature: 0.8, topK: 9, topP: 0.9 };
    const n = 20000;
    const bySeed = checkDraws(row, w, n);
    const a = chiSquare(bySeed.ids, bySeed.ref);
    expect(a.outside).toEqual([]);
    expect(a.df).toBeGreaterThanOrEqual(4);
    expect(a.stat, `chi-square over seeds, df ${a.df}`).toBeLessThan(chiSquareCritical(a.df));
    // One seed, n steps: the step counter must give independent draws too.
    const ids = new Int32Array(n);
    for (let step = 0; step < n; step++) ids[step] = sampleToken(row, w, { seed: 5, step }).token;
    const b = chiSquare(ids, bySeed.ref);
    expect(b.outside).toEqual([]);
    expect(b.stat, `chi-square over steps, df ${b.df}`).toBeLessThan(chiSquareCritical(b.df));
  });

  it('a row depends only on its logits, options, seed and step: not on the other rows or the batch', () => {
    const v = 3000;
    const rows = 8;
    const logits = randomNormal(rows * v, seededRandom(11), 2);
    const seeds = Array.from({ length: rows }, (_, r) => completionSeed(1, 2, r));
    const w: Call = { doSample: true, topK: 100, topP: 0.9, seeds, step: 4 };
    const all = sampleRows(logits, v, w);
    for (let r = 0; r < rows; r++) {
      const alone = sampleRows(logits.slice(r * v, (r + 1) * v), v, { ...w, seeds: [seeds[r]] });
      expect(alone.ids[0], `row ${r}`).toBe(all.ids[r]);
      expect(alone.logprobs[0]).toBe(all.logprobs[r]);
    }
    // Reversed batch: the same tokens, reversed.
    const reversed = new Float32Array(rows * v);
    for (let r = 0; r < rows; r++) reversed.set(logits.subarray(r * v, (r + 1) * v), (rows - 1 - r) * v);
    const back = sampleRows(reversed, v, { ...w, seeds: [...seeds].reverse() });
    expect(Array.from(back.ids).reverse()).toEqual(Array.from(all.ids));
    // Same seed and step: the same token; other steps draw afresh.
    expect(Array.from(sampleRows(logits, v, w).ids)).toEqual(Array.from(all.ids));
    const steps = new Set(
      Array.from(
        { length: 20 },
        (_, step) => sampleRows(logits.subarray(0, v), v, { ...w, seeds: [seeds[0]], step }).ids[0],
      ),
    );
    expect(steps.size).toBeGreaterThan(5);
  });

  it('per-row options and the stop bookkeeping', () => {
    const v = 6;
    const row = f32(0, 1, 2, 3, 2.5, 1.5);
    const logits = repeatRow(row, 3);
    const outIds = new Int32Array(3);
    const outLogprobs = new Float32Array(3);
    const done = Int32Array.from([0, 0, 1]);
    sampleTokens({
      logits,
      vocabSize: v,
      outIds,
      outLogprobs,
      doSample: true,
      temperature: f32(1, 0.5, 1),
      topK: Int32Array.from([1, 0, 0]),
      topP: f32(1, 1e-6, 1),
      seeds: seedWords([1, 2, 3]),
      step: 0,
      done,
      stopIds: Int32Array.from([3, 5]),
      padId: 4,
    });
    // Rows 0 and 1 keep only id 3 (top-k 1; top-p tiny), which is a stop id; row 2 had stopped.
    expect(Array.from(outIds)).toEqual([3, 3, 4]);
    expect(Array.from(done)).toEqual([1, 1, 1]);
    const r0 = reference(row, { doSample: true, temperature: 1 });
    const r1 = reference(row, { doSample: true, temperature: 0.5 });
    expectClose(outLogprobs, [r0.logp[3], r1.logp[3], 0], LOGPROB_TOL, 'per-row log-probs');
  });

  it('rejects bad options, shapes and dtypes with the op and argument named', () => {
    const logits = f32(0, 1, 2, 3);
    const base: SampleTokensOptions = {
      logits,
      vocabSize: 4,
      outIds: new Int32Array(1),
      outLogprobs: new Float32Array(1),
      doSample: true,
      seeds: seedWords([0]),
      step: 0,
    };
    const bad = (o: Partial<Record<keyof SampleTokensOptions, unknown>>, message: RegExp) =>
      expect(() => sampleTokens({ ...base, ...o } as SampleTokensOptions)).toThrow(message);
    bad({ temperature: 0 }, /ops\.sampleTokens: temperature must be > 0 \(got 0\)/);
    bad({ temperature: -1 }, /temperature must be > 0/);
    bad({ temperature: Number.NaN }, /temperature must be > 0/);
    bad({ temperature: f32(0) }, /temperature\[0\] must be > 0/);
    bad({ topK: -1 }, /ops\.sampleTokens: topK must be an integer >= 0 \(got -1\)/);
    bad({ topK: 1.5 }, /topK must be an integer >= 0/);
    bad({ topP: 0 }, /ops\.sampleTokens: topP must be in \(0, 1\] \(got 0\)/);
    bad({ topP: 1.5 }, /topP must be in \(0, 1\]/);
    bad({ topP: f32(2) }, /topP\[0\] must be in \(0, 1\]/);
    bad({ topP: f32(0.5, 0.5) }, /topP has 2 elements; expected a number or one per row \(1\)/);
    bad(
      { logits: f32(0, 1, 2) },
      /ops\.sampleTokens: logits has 3 elements; expected 4 \(\[rows, vocabSize\] = \[1, 4\]/,
    );
    bad(
      { logits: Int32Array.from([0, 1, 2, 3]) },
      /logits must be a Float32Array or a float32 tensor \(got Int32Array\)/,
    );
    bad(
      { outIds: new Float32Array(1) },
      /outIds must be a Int32Array or a int32 tensor \(got Float32Array\)/,
    );
    bad({ outLogprobs: new Float32Array(2) }, /outLogprobs has 2 elements; expected 1/);
    bad({ vocabSize: 0 }, /vocabSize must be a positive integer/);
    bad({ seeds: undefined }, /seeds is required when sampling/);
    bad({ seeds: new Int32Array(1) }, /seeds has 1 elements; expected \[rows, 2\] = 2/);
    bad({ step: -1 }, /step must be an integer in \[0, 2\^53\) \(got -1\)/);
    bad({ step: undefined }, /step is required/);
    bad({ suppressIds: Int32Array.from([4]) }, /suppressIds\[0\] = 4 is outside the vocabulary \[0, 4\)/);
    bad({ stopIds: Int32Array.from([1]) }, /stopIds needs done/);
    bad({ done: new Int32Array(2), padId: 0 }, /done has 2 elements; expected one per row \(1\)/);
    bad({ done: new Int32Array(1) }, /padId is required/);
    bad({ logits: f32(0, Number.NaN, 1, 2) }, /ops\.sampleTokens: row 0 has no token to choose/);
    bad({ logits: f32(0, Number.POSITIVE_INFINITY, 1, 2) }, /row 0 has no token to choose/);
    bad(
      { logits: f32(1, 2, 3, 4), suppressIds: Int32Array.from([0, 1, 2, 3]) },
      /row 0 has no token to choose/,
    );
    const ninf = Number.NEGATIVE_INFINITY;
    bad({ logits: f32(ninf, ninf, ninf, ninf), doSample: false }, /row 0 has no token to choose/);
    // The TS helpers.
    expect(() => seedWords([-1])).toThrow(/seeds\[0\] must be an integer in \[0, 2\^53\)/);
    expect(() => completionSeed(1, 0.5)).toThrow(/completionSeed: part 1 must be an integer/);
    expect(() => sampleToken(logits, { doSample: true, topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
  });

  it('tensors work as buffers too (CPU tensors)', () => {
    tidy(() => {
      const row = longRow(5);
      const w: Warp = { doSample: true, topK: 40, topP: 0.9 };
      const logits = Tensor.from(repeatRow(row, 2), [2, row.length]);
      const outIds = Tensor.empty([2], { dtype: 'int32' });
      const outLogprobs = Tensor.empty([2]);
      sampleTokens({
        logits,
        vocabSize: row.length,
        outIds,
        outLogprobs,
        ...w,
        seeds: seedWords([3, 4]),
        step: 9,
      });
      const host = sampleRows(repeatRow(row, 2), row.length, { ...w, seeds: [3, 4], step: 9 });
      expect(Array.from(outIds.toTypedArray())).toEqual(Array.from(host.ids));
      expect(Array.from(outLogprobs.toFloat32Array())).toEqual(Array.from(host.logprobs));
    });
  });
});

// ---- the CUDA kernel: the same checks, and identical ids to the CPU kernel.

/** The op on CUDA buffers; results copied back. */
function sampleRowsCuda(logits: Float32Array, vocab: number, c: Call): Sampled {
  return tidy(() => {
    const rows = logits.length / vocab;
    const cuda = { device: 'cuda' as const };
    const outIds = Tensor.empty([rows], { dtype: 'int32', ...cuda });
    const outLogprobs = Tensor.empty([rows], cuda);
    sampleTokens({
      logits: Tensor.from(logits, [rows, vocab], cuda),
      vocabSize: vocab,
      outIds,
      outLogprobs,
      doSample: c.doSample,
      temperature: c.temperature,
      topK: c.topK,
      topP: c.topP,
      seeds: c.doSample
        ? Tensor.from(seedWords(c.seeds ?? Array.from({ length: rows }, (_, r) => r)), [rows, 2], {
            dtype: 'int32',
            ...cuda,
          })
        : undefined,
      step: c.doSample ? (c.step ?? 0) : undefined,
      suppressIds: c.suppress
        ? Tensor.from(Int32Array.from(c.suppress), [c.suppress.length], { dtype: 'int32', ...cuda })
        : undefined,
    });
    return { ids: outIds.toTypedArray() as Int32Array, logprobs: outLogprobs.toFloat32Array() };
  });
}

describeGpu(native, 'ops.sampleTokens on CUDA', () => {
  it('greedy and hand-worked rows: every draw as the reference', () => {
    const logits = f32(1, 4, 2, 4, 3, 5, -1, 5, 0, 0);
    const greedy = sampleRowsCuda(logits, 5, { doSample: false, suppress: [0] });
    expect(Array.from(greedy.ids)).toEqual([1, 2]);
    expectClose(
      greedy.logprobs,
      sampleRows(logits, 5, { doSample: false, suppress: [0] }).logprobs,
      LOGPROB_TOL,
    );
    const cases: Warp[] = [
      { doSample: true, topK: 2 },
      { doSample: true, topK: 1 },
      { doSample: true, topP: 1e-6 },
      { doSample: true, topP: 0.5 },
      { doSample: true, temperature: 2 },
      { doSample: true, suppress: [1], temperature: 3 },
      { doSample: true, topK: 3, topP: 0.8 },
    ];
    const rows = [
      f32(1, 3, 3, 2, 3),
      f32(2, 5, 5),
      f32(0, 2, 2, 1),
      f32(0, 0),
      f32(0, Math.log(4), Math.log(16)),
      f32(1, 9, 2, 3),
    ];
    for (const w of cases) for (const row of rows) checkDraws(row, w, 500, 0, sampleRowsCuda);
  });

  it('rows of 151936 logits: ids identical to the CPU kernel and the reference', () => {
    for (const [k, w] of LONG_CONFIGS.entries()) {
      for (const ties of [false, true]) {
        const row = longRow(100 + k, ties);
        const seeds = Array.from({ length: 12 }, (_, i) => completionSeed(7, i));
        const gpu = sampleRowsCuda(repeatRow(row, 12), row.length, { ...w, seeds, step: 3 + k });
        const cpu = sampleRows(repeatRow(row, 12), row.length, { ...w, seeds, step: 3 + k });
        expect(Array.from(gpu.ids), JSON.stringify(w)).toEqual(Array.from(cpu.ids));
        expectClose(gpu.logprobs, cpu.logprobs, LOGPROB_TOL, `log-probs ${JSON.stringify(w)}`);
        checkDraws(row, w, 12, 3 + k, sampleRowsCuda);
      }
    }
  });

  it('draws follow the truncated softmax (chi-square over seeds)', () => {
    const row = f32(...Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.7) * 2));
    const w: Warp = { doSample: true, temperature: 0.8, topK: 9, topP: 0.9 };
    const { ids, ref } = checkDraws(row, w, 20000, 0, sampleRowsCuda);
    const c = chiSquare(ids, ref);
    expect(c.outside).toEqual([]);
    expect(c.stat).toBeLessThan(chiSquareCritical(c.df));
  });

  it('a row does not depend on the batch (more rows than blocks, one row alone)', () => {
    const v = 2000;
    const rows = 300; // above the kernel's 256 blocks: blocks loop over rows
    const logits = randomNormal(rows * v, seededRandom(12), 2);
    const seeds = Array.from({ length: rows }, (_, r) => completionSeed(3, r));
    const w: Call = { doSample: true, topK: 64, topP: 0.95, seeds, step: 1 };
    const all = sampleRowsCuda(logits, v, w);
    expect(Array.from(all.ids)).toEqual(Array.from(sampleRows(logits, v, w).ids));
    for (const r of [0, 255, 256, 299]) {
      const alone = sampleRowsCuda(logits.slice(r * v, (r + 1) * v), v, { ...w, seeds: [seeds[r]] });
      expect(alone.ids[0], `row ${r}`).toBe(all.ids[r]);
    }
  });

  it('per-row options on the device, stop flags, and invalid rows (id -1, log-prob NaN)', () => {
    tidy(() => {
      const cuda = { device: 'cuda' as const };
      const row = f32(0, 1, 2, 3, 2.5, 1.5);
      const nan = f32(0, Number.NaN, 1, 1, 1, 1);
      const logits = Tensor.from(new Float32Array([...row, ...row, ...row, ...nan, ...row]), [5, 6], cuda);
      const outIds = Tensor.empty([5], { dtype: 'int32', ...cuda });
      const outLogprobs = Tensor.empty([5], cuda);
      const done = Tensor.from(Int32Array.from([0, 0, 1, 0, 0]), [5], { dtype: 'int32', ...cuda });
      sampleTokens({
        logits,
        vocabSize: 6,
        outIds,
        outLogprobs,
        doSample: true,
        // Row 4's temperature is out of range: the kernel cannot throw, so it marks the row.
        temperature: Tensor.from(f32(1, 0.5, 1, 1, 0), [5], cuda),
        topK: Tensor.from(Int32Array.from([1, 0, 0, 0, 0]), [5], { dtype: 'int32', ...cuda }),
        topP: Tensor.from(f32(1, 1e-6, 1, 1, 1), [5], cuda),
        seeds: Tensor.from(seedWords([1, 2, 3, 4, 5]), [5, 2], { dtype: 'int32', ...cuda }),
        step: 0,
        done,
        stopIds: Tensor.from(Int32Array.from([3, 5]), [2], { dtype: 'int32', ...cuda }),
        padId: 4,
      });
      expect(Array.from(outIds.toTypedArray())).toEqual([3, 3, 4, -1, -1]);
      expect(Array.from(done.toTypedArray())).toEqual([1, 1, 1, 0, 0]);
      const lp = outLogprobs.toFloat32Array();
      expect(lp[2]).toBe(0);
      expect(Number.isNaN(lp[3]) && Number.isNaN(lp[4])).toBe(true);
    });
  });
});
