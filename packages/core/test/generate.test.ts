import { dirname } from 'node:path';
import {
  expectClose,
  Fixture,
  fixtureCases,
  fixturePath,
  GENERATION_CASE_FILTER,
  specialTokens,
} from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, noGrad, Qwen2VLForConditionalGeneration, Tensor, tidy } from '../src/index.js';
import { completionSeed } from '../src/model/sampling.js';

const model = Qwen2VLForConditionalGeneration.fromPretrained(
  dirname(fixturePath('qwen2vl-tiny/model.safetensors')),
);
afterAll(() => model.dispose());
const tokens = specialTokens();
const V = model.config.text.vocabSize;
// An unused embedding row as the stop token: never generated, so the fixtures' decodes (exactly
// max_new_tokens, EOS included) run to the end.
const UNUSED_ID = tokens.unusedIds.at(-1)!;
// The generation cases of the set: the single-prompt one and the batched one (by batch size).
const GENERATION_CASES = fixtureCases('qwen2vl-tiny', GENERATION_CASE_FILTER);
const generationCase = (rows: 'single' | 'batch') => {
  const name = GENERATION_CASES.find((n) => {
    const batch = new Fixture(`qwen2vl-tiny/${n}.safetensors`).shape('input_ids')[0];
    return rows === 'single' ? batch === 1 : batch > 1;
  });
  if (!name) throw new Error(`the fixture set has no ${rows} generation case`);
  return new Fixture(`qwen2vl-tiny/${name}.safetensors`);
};

function promptOf(f: Fixture) {
  const [batch, seqLen] = f.shape('input_ids');
  return {
    batch,
    seqLen,
    inputIds: f.i32('input_ids'),
    attentionMask: f.i32('attention_mask'),
    pixelValues: Tensor.from(f.f32('pixel_values'), f.shape('pixel_values')),
    imageGridThw: f.i32('image_grid_thw'),
  };
}

describe('generation with a KV cache', () => {
  for (const name of GENERATION_CASES) {
    it(`${name}: greedy ids exact, every step's logits within 1e-4`, () => {
      const f = new Fixture(`qwen2vl-tiny/${name}.safetensors`);
      const inputs = promptOf(f);
      const n = f.scalar('max_new_tokens');
      const steps: Float32Array[] = [];
      const out = tidy(() =>
        generate(model, inputs, {
          doSample: false,
          maxNewTokens: n,
          stopTokenIds: [UNUSED_ID],
          stopWhenAllDone: false,
          onStepLogits: (_, logits) => steps.push(Float32Array.from(logits)),
        }),
      );
      expect(Array.from(out.completionIds)).toEqual(Array.from(f.i32('generated_ids')));
      expect(Array.from(out.sequences)).toEqual(Array.from(f.i32('sequences')));
      expect(Array.from(out.ropeDeltas)).toEqual(Array.from(f.i32('rope_deltas')));
      const ref = f.f64('step_logits'); // [B, n, V]
      const b = inputs.batch;
      for (let k = 0; k < n; k++) {
        const want: number[] = [];
        for (let row = 0; row < b; row++)
          want.push(...ref.subarray((row * n + k) * V, (row * n + k + 1) * V));
        expectClose(steps[k], want, { atol: 1e-4, rtol: 1e-4 }, `step ${k} logits`);
      }
      // Each greedy token's log-prob is the float64 log-softmax of the reference logits at that id,
      // over the ids that can be generated (the image / video placeholders are suppressed).
      const suppressed = new Set([model.config.imageTokenId, model.config.videoTokenId]);
      const ids = f.i32('generated_ids');
      const wantLogprobs: number[] = [];
      for (let row = 0; row < b; row++) {
        for (let k = 0; k < n; k++) {
          const logits = ref.subarray((row * n + k) * V, (row * n + k + 1) * V);
          let max = Number.NEGATIVE_INFINITY;
          for (let i = 0; i < V; i++) if (!suppressed.has(i)) max = Math.max(max, logits[i]);
          let sum = 0;
          for (let i = 0; i < V; i++) if (!suppressed.has(i)) sum += Math.exp(logits[i] - max);
          wantLogprobs.push(logits[ids[row * n + k]] - max - Math.log(sum));
        }
      }
      expectClose(out.logprobs, wantLogprobs, { atol: 2e-4 }, 'greedy log-probs');
    });
  }

  it('decoding with the cache equals recomputing the full sequence', () => {
    const f = generationCase('batch');
    const inputs = promptOf(f);
    const out = tidy(() =>
      generate(model, inputs, {
        doSample: false,
        maxNewTokens: 6,
        stopTokenIds: [UNUSED_ID],
        stopWhenAllDone: false,
      }),
    );
    // Full forward over prompt + first 5 tokens: its last position predicts token 6.
    const s = inputs.seqLen + 5;
    const seq = new Int32Array(inputs.batch * s);
    const mask = new Int32Array(inputs.batch * s);
    for (let row = 0; row < inputs.batch; row++) {
      seq.set(out.sequences.subarray(row * (inputs.seqLen + 6), row * (inputs.seqLen + 6) + s), row * s);
      mask.set(inputs.attentionMask.subarray(row * inputs.seqLen, (row + 1) * inputs.seqLen), row * s);
      mask.fill(1, row * s + inputs.seqLen, (row + 1) * s);
    }
    const lastTokens = tidy(() =>
      noGrad(() => {
        const full = model.forward({ ...inputs, inputIds: seq, seqLen: s, attentionMask: mask });
        const logits = model.logits(full.hidden).toFloat32Array();
        return Array.from({ length: inputs.batch }, (_, row) => {
          const r = logits.subarray((row * s + s - 1) * V, (row * s + s) * V);
          return r.indexOf(Math.max(...r));
        });
      }),
    );
    expect(lastTokens).toEqual(
      Array.from({ length: inputs.batch }, (_, row) => out.completionIds[row * 6 + 5]),
    );
  });

  it('sampling is seeded; stop tokens end a row and the mask covers them', () => {
    const f = generationCase('batch');
    const inputs = promptOf(f);
    const run = (seed: number) =>
      tidy(() =>
        generate(model, inputs, {
          doSample: true,
          temperature: 1,
          topK: 50,
          topP: 0.95,
          maxNewTokens: 10,
          seed,
        }),
      );
    const a = run(7);
    expect(Array.from(run(7).completionIds)).toEqual(Array.from(a.completionIds));
    // Stop on the first generated token of row 0: its mask is [1, 0, 0, ...] and the rest is padding.
    const first = a.completionIds[0];
    const stopped = tidy(() =>
      generate(model, inputs, {
        doSample: true,
        topK: 50,
        topP: 0.95,
        maxNewTokens: 10,
        seed: 7,
        stopTokenIds: [first],
        padTokenId: tokens.pad,
      }),
    );
    expect(stopped.completionMask[0]).toBe(1);
    expect(Array.from(stopped.completionMask.subarray(1, stopped.length))).toEqual(
      new Array(stopped.length - 1).fill(0),
    );
    expect(stopped.completionIds[1]).toBe(tokens.pad);
    for (let i = 0; i < a.logprobs.length; i++) expect(a.logprobs[i]).toBeLessThanOrEqual(0);
    expect(() => generate(model, inputs, { doSample: true, topP: 0, maxNewTokens: 2 })).toThrow(
      /topP must be in \(0, 1\]/,
    );
  });

  it('never generates suppressed ids, nor the image / video placeholders', () => {
    const f = generationCase('single');
    const inputs = promptOf(f);
    const greedyFirst = f.i32('generated_ids')[0];
    const out = tidy(() =>
      generate(model, inputs, {
        doSample: false,
        maxNewTokens: 3,
        suppressTokenIds: [greedyFirst],
        stopTokenIds: [UNUSED_ID],
      }),
    );
    expect(out.completionIds[0]).not.toBe(greedyFirst);
    const sampled = tidy(() =>
      generate(model, inputs, {
        doSample: true,
        temperature: 5,
        maxNewTokens: 40,
        stopTokenIds: [UNUSED_ID],
        seed: 3,
      }),
    );
    for (const id of sampled.completionIds) expect([tokens.imagePad, tokens.videoPad]).not.toContain(id);
  });

  it('sampling with top-k = 1 picks the greedy ids (the sampler on the step logits)', () => {
    const f = generationCase('batch');
    const out = tidy(() =>
      generate(model, promptOf(f), {
        doSample: true,
        topK: 1,
        temperature: 0.7,
        maxNewTokens: f.scalar('max_new_tokens'),
        stopTokenIds: [UNUSED_ID],
        stopWhenAllDone: false,
        seed: 5,
      }),
    );
    expect(Array.from(out.completionIds)).toEqual(Array.from(f.i32('generated_ids')));
  });

  it("a row's sampled completion depends on its prompt and seed only, not on the batch", () => {
    // The single-image prompt twice, with per-row seeds, against each row generated alone.
    const f = generationCase('single');
    const one = promptOf(f);
    const pixels = f.f32('pixel_values');
    const [patches, dim] = f.shape('pixel_values');
    const twice = (a: Int32Array) => Int32Array.from([...a, ...a]);
    const two = {
      batch: 2,
      seqLen: one.seqLen,
      inputIds: twice(one.inputIds),
      attentionMask: twice(one.attentionMask),
      pixelValues: Tensor.from(Float32Array.from([...pixels, ...pixels]), [2 * patches, dim]),
      imageGridThw: twice(one.imageGridThw),
    };
    const seeds = [completionSeed(9, 4, 0, 0), completionSeed(9, 4, 0, 1)];
    const config = {
      doSample: true,
      temperature: 1.5,
      topP: 0.95,
      maxNewTokens: 12,
      stopTokenIds: [UNUSED_ID],
    };
    const both = tidy(() => generate(model, two, { ...config, seeds }));
    const n = both.length;
    for (const row of [0, 1]) {
      const alone = tidy(() => generate(model, promptOf(f), { ...config, seeds: [seeds[row]] }));
      expect(alone.length).toBe(n);
      expect(Array.from(alone.completionIds), `row ${row}`).toEqual(
        Array.from(both.completionIds.subarray(row * n, (row + 1) * n)),
      );
    }
    // Different seeds give different completions (temperature 1.5 over the whole vocabulary).
    expect(Array.from(both.completionIds.subarray(0, n))).not.toEqual(
      Array.from(both.completionIds.subarray(n)),
    );
    expect(() => generate(model, two, { ...config, seeds: [1] })).toThrow(
      /generate: seeds has 1 values for 2 rows/,
    );
    expect(() => generate(model, two, { ...config, seed: -1 })).toThrow(/generate: seed must be an integer/);
  });
});
