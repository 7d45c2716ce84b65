// GRPOTrainer itself through fixtures/grpo-step (fixtures/README.md section 5): the fixture's
// rollout (prompt, G fixed completions, rewards) is replayed through the trainer's own wiring --
// prompt repetition, reward -> advantage, rollout assembly, policy and reference log-probs, the
// dynamic KL weight at the global step, the fused loss, clipping and AdamW -- for the fixture's two
// consecutive steps. grpo-step.test.ts rebuilds the same step by hand from the ops; this one holds
// the trainer to the same references. The only stand-in is the sampler: `sampleCompletions` (the
// trainer's seam for this) returns the fixture's completions instead of sampling.
// Tolerances from section 6: loss within 1e-5 + 1e-4 |ref|, grad norm 1e-4 relative, log-probs and
// KL as activations, gradients 1e-3 * max|ref|, updated weights: >= 99.9% of elements within 1e-6
// and every element within lr / 2.
import { dirname } from 'node:path';
import { expectClose, expectScalarClose, Fixture, fixturePath, maxAbs } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type GenerationConfig,
  type GenerationOutput,
  GRPOTrainer,
  type GrpoConfig,
  Qwen2VLForConditionalGeneration,
  type Qwen2VLInputs,
  type StepMetrics,
  type TrainDataAdapter,
} from '../src/index.js';

const f = new Fixture('grpo-step/grpo-step.safetensors');
const model = Qwen2VLForConditionalGeneration.fromPretrained(
  dirname(fixturePath('grpo-step/model.safetensors')),
);
afterAll(() => model.dispose());

const [G, seqLen] = f.shape('input_ids');
const C = f.shape('completion_ids')[1];
const P = f.scalar('prompt_length');
const completionIds = f.i32('completion_ids');
const completionMask = f.i32('completion_mask');
const [patches, patchDim] = f.shape('pixel_values');
const grid = f.i32('image_grid_thw');
const lr = f.scalar('lr');

// One sample: the fixture's prompt (row 0's first P tokens, its image once).
type Sample = 'the grpo-step prompt';
const completionText = (ids: ArrayLike<number>) => Array.from(ids).join(' ');
const data: TrainDataAdapter<Sample> = {
  encodePrompts: (batch) => {
    expect(batch).toHaveLength(1);
    return {
      batchSize: 1,
      seqLen: P,
      inputIds: f.i32('input_ids').slice(0, P),
      attentionMask: f.i32('attention_mask').slice(0, P),
      pixelValues: f.f32('pixel_values').slice(0, (patches / G) * patchDim),
      patchDim,
      imageGridThw: grid.slice(0, 3),
      imagesPerRow: Int32Array.of(1),
    };
  },
  encodeSft: () => {
    throw new Error('not used by GRPO');
  },
  decode: completionText,
  promptText: (x) => x,
  stopTokenIds: [],
  padTokenId: 0,
};

// The rewards of the fixture, for its completions (checked: the trainer decodes what it was given).
const rewards = Array.from(f.f64('rewards'));
const wantTexts = Array.from({ length: G }, (_, r) => {
  const ids: number[] = [];
  for (let t = 0; t < C && completionMask[r * C + t]; t++) ids.push(completionIds[r * C + t]);
  return completionText(ids);
});

const config: GrpoConfig = {
  learningRate: lr,
  lrSchedulerType: 'constant',
  warmupSteps: 0,
  weightDecay: f.scalar('weight_decay'),
  adamBeta1: f.scalar('adam_beta1'),
  adamBeta2: f.scalar('adam_beta2'),
  adamEpsilon: f.scalar('adam_eps'),
  maxGradNorm: f.scalar('max_grad_norm'),
  perDeviceTrainBatchSize: G,
  gradientAccumulationSteps: 1,
  seed: 1,
  maxSteps: f.scalar('total_steps'),
  numGenerations: f.scalar('num_generations'),
  promptsPerStep: 1,
  maxCompletionLength: C,
  temperature: 1,
  topK: 0,
  topP: 1,
  beta: {
    type: 'dynamic',
    betaMin: f.scalar('beta_min'),
    betaMax: f.scalar('beta_max'),
    exploreFraction: f.scalar('explore_frac'),
  },
  epsilon: f.scalar('epsilon_low'),
  epsilonHigh: f.scalar('epsilon_high'),
  numIterations: 1,
  lossType: 'grpo',
  scaleRewards: 'group',
  klEstimator: 'k3',
};

/** The trainer with the fixture's completions in place of sampling, from global step `start`. */
class ReplayTrainer extends GRPOTrainer<Sample> {
  /** Each step's raw (unclipped) gradients, read before the trainer clips and applies them. */
  readonly grads: Map<string, Float32Array>[] = [];

  startAt(step: number): void {
    this.step = step;
  }

  protected override sampleCompletions(
    inputs: Qwen2VLInputs,
    _options: GenerationConfig,
  ): Pick<GenerationOutput, 'completionIds' | 'completionMask' | 'length'> {
    // The trainer repeated the prompt G times: the fixture's prompt rows, pixels and grids.
    expect(inputs.batch).toBe(G);
    expect(Array.from(inputs.inputIds)).toEqual(
      Array.from({ length: G }, (_, r) =>
        Array.from(f.i32('input_ids').subarray(r * seqLen, r * seqLen + P)),
      ).flat(),
    );
    expect(Array.from(inputs.imageGridThw ?? [])).toEqual(Array.from(grid));
    return { completionIds, completionMask, length: C };
  }

  protected override async computeStep(step: number) {
    const values = await super.computeStep(step);
    this.grads.push(new Map(this.model.namedParameters().map(([n, p]) => [n, p.grad!.toFloat32Array()])));
    return values;
  }
}

function checkParams(step: number): void {
  let total = 0;
  let within = 0;
  for (const [name, p] of model.namedParameters()) {
    const ref = f.f64(`step${step}.param.${name}`);
    const got = p.toFloat32Array();
    expectClose(got, ref, { atol: lr / 2 }, `${name} after step ${step}`);
    for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - ref[i]) <= 1e-6) within++;
    total += got.length;
  }
  expect(within / total, `share of elements within 1e-6 after step ${step}`).toBeGreaterThanOrEqual(0.999);
}

describe('GRPOTrainer on the grpo-step rollout (two GRPO-D steps)', () => {
  it('log-probs, beta, loss, KL, gradients, grad norm and updated weights of both steps', async () => {
    const first = f.scalar('step1.global_step');
    expect(f.scalar('step2.global_step')).toBe(first + 1);
    const metrics: StepMetrics[] = [];
    const checked: number[] = [];
    const trainer = new ReplayTrainer({
      model,
      data,
      train: ['the grpo-step prompt'],
      config,
      rewards: async (texts) => {
        expect(texts).toEqual(wantTexts);
        return { total: rewards, perFunction: { fixture: rewards } };
      },
      callbacks: {
        onStep: (m) => {
          metrics.push(m);
          // Right after the update of fixture step k: the weights it stores.
          checkParams(metrics.length);
          checked.push(metrics.length);
        },
        shouldStop: () => metrics.length === 2,
      },
    });
    // The policy's log-probs as the trainer computes them (the reference is a copy made in the
    // constructor, so only the policy's calls land here).
    const logprobs: Float32Array[] = [];
    const tokenLogprobs = model.tokenLogprobs.bind(model);
    model.tokenLogprobs = (...args: Parameters<typeof model.tokenLogprobs>) => {
      const out = tokenLogprobs(...args);
      logprobs.push(out.toFloat32Array());
      return out;
    };
    trainer.startAt(first);
    try {
      const result = await trainer.train();
      expect(result).toMatchObject({ steps: first + 2, stoppedEarly: true, reason: 'requested' });
    } finally {
      trainer.dispose();
      model.tokenLogprobs = tokenLogprobs;
    }
    expect(checked).toEqual([1, 2]);
    expect(logprobs).toHaveLength(2);
    for (const k of [1, 2]) {
      const m = metrics[k - 1];
      expectClose(
        logprobs[k - 1],
        f.f64(`step${k}.per_token_logps`),
        { atol: 1e-4, rtol: 1e-4 },
        `step ${k} log-probs`,
      );
      expectScalarClose(m.beta as number, f.scalar(`step${k}.beta`), { atol: 1e-12 }, `step ${k} beta`);
      const refLoss = f.scalar(`step${k}.loss`);
      expect(Math.abs(m.loss - refLoss), `step ${k} loss`).toBeLessThanOrEqual(
        1e-5 + 1e-4 * Math.abs(refLoss),
      );
      expectScalarClose(
        m.kl as number,
        f.scalar(`step${k}.metric.mean_kl`),
        { rtol: 1e-4, atol: 1e-7 },
        `step ${k} KL`,
      );
      expectScalarClose(m.grad_norm, f.scalar(`step${k}.grad_norm`), { rtol: 1e-4 }, `step ${k} grad norm`);
      expect(m.learning_rate).toBe(lr);
    }
    // Step 1's raw gradients are stored (step 2's are not: fixtures README section 5).
    for (const [name, g] of trainer.grads[0]) {
      const ref = f.f64(`step1.grad.${name}`);
      expectClose(g, ref, { atol: 1e-3 * maxAbs(ref) + 1e-7 }, `step1.grad.${name}`);
    }
    expect(trainer.grads[0].size).toBe(model.parameters().length);
  });
});
