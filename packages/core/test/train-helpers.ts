// What the trainer tests share: a toy data adapter on the tiny fixture model, its reward, and a
// run of either trainer that returns what the tests compare (step metrics, completions, weights).
import { dirname } from 'node:path';
import { fixturePath, specialTokens } from '@othink/testing';
import {
  type CheckpointOptions,
  type CompletionRecord,
  type Device,
  GRPOTrainer,
  type GrpoConfig,
  type ProcessGroup,
  Qwen2VLForConditionalGeneration,
  SFTTrainer,
  type SftConfig,
  type StepMetrics,
  type TrainDataAdapter,
  type TrainResult,
} from '../src/index.js';

// A text-only task on the tiny fixture model (text ids, pad and <|im_start|> / <|im_end|> from the
// set's special_tokens.json): the "answer" to a prompt is its last id repeated. Enough to exercise
// the trainers' mechanics.
export interface Sample {
  prompt: number[];
  answer: number[];
}
const tokens = specialTokens();
const PAD = tokens.pad;
const END = tokens.imEnd;
export const samples: Sample[] = Array.from({ length: 12 }, (_, i) => {
  const prompt = [
    tokens.imStart,
    ...Array.from({ length: 3 + (i % 4) }, (_, j) => tokens.textIds[(i * 37 + j * 11) % 400]),
  ];
  return { prompt, answer: [prompt.at(-1)!, prompt.at(-1)!, END] };
});

export const data: TrainDataAdapter<Sample> = {
  encodePrompts(batch) {
    const s = Math.max(...batch.map((x) => x.prompt.length));
    const inputIds = new Int32Array(batch.length * s).fill(PAD);
    const attentionMask = new Int32Array(batch.length * s);
    batch.forEach((x, b) => {
      inputIds.set(x.prompt, b * s + s - x.prompt.length);
      attentionMask.fill(1, b * s + s - x.prompt.length, (b + 1) * s);
    });
    return {
      batchSize: batch.length,
      seqLen: s,
      inputIds,
      attentionMask,
      pixelValues: new Float32Array(0),
      patchDim: 0,
      imageGridThw: new Int32Array(0),
      imagesPerRow: new Int32Array(batch.length),
    };
  },
  encodeSft(batch) {
    const s = Math.max(...batch.map((x) => x.prompt.length + x.answer.length));
    const inputIds = new Int32Array(batch.length * s).fill(PAD);
    const attentionMask = new Int32Array(batch.length * s);
    const labels = new Int32Array(batch.length * s).fill(-100);
    batch.forEach((x, b) => {
      const row = [...x.prompt, ...x.answer];
      inputIds.set(row, b * s);
      attentionMask.fill(1, b * s, b * s + row.length);
      labels.set(x.answer, b * s + x.prompt.length);
    });
    return {
      batchSize: batch.length,
      seqLen: s,
      inputIds,
      attentionMask,
      labels,
      pixelValues: new Float32Array(0),
      patchDim: 0,
      imageGridThw: new Int32Array(0),
      imagesPerRow: new Int32Array(batch.length),
    };
  },
  decode: (ids) => Array.from(ids).join(' '),
  promptText: (x) => x.prompt.join(' '),
  stopTokenIds: [END],
  padTokenId: PAD,
};

/**
 * Reward: the share of completion tokens with an even id. The tiny model's random completions
 * score unequally within a group (unlike a task it cannot yet solve, where every reward is 0 and
 * every advantage too), so GRPO's update is not zero.
 */
export async function evenIdReward(completions: string[], _batch: Sample[]) {
  const total = completions.map((c) => {
    const ids = c.split(' ').filter((t) => t !== '');
    return ids.filter((t) => Number(t) % 2 === 0).length / Math.max(ids.length, 1);
  });
  return { total, perFunction: { even: total } };
}

/** The optimizer settings the toy runs share (AdamW as torch, constant lr). */
export const toyCommonConfig = {
  learningRate: 3e-3,
  lrSchedulerType: 'constant' as const,
  warmupSteps: 0,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  maxGradNorm: 1,
  gradientAccumulationSteps: 2,
  seed: 5,
};

/** A short GRPO-D run of the toy task: 2 prompts x 4 completions of 6 tokens, two updates per rollout. */
export const toyGrpoConfig: GrpoConfig = {
  ...toyCommonConfig,
  learningRate: 1e-3,
  gradientAccumulationSteps: 1,
  maxSteps: 4,
  numGenerations: 4,
  promptsPerStep: 2,
  perDeviceTrainBatchSize: 4,
  maxCompletionLength: 6,
  temperature: 1,
  topK: 0,
  topP: 1,
  beta: { type: 'dynamic', betaMin: 0.04, betaMax: 0.1, exploreFraction: 0.3 },
  epsilon: 0.2,
  epsilonHigh: 0.28,
  numIterations: 2,
  lossType: 'grpo',
  scaleRewards: 'group',
  klEstimator: 'k3',
};

export const tinyModelDir = dirname(fixturePath('qwen2vl-tiny/model.safetensors'));

export type ToyRunSpec = (
  | { kind: 'sft'; config: SftConfig; checkpoint?: CheckpointOptions }
  | { kind: 'grpo'; config: GrpoConfig; checkpoint?: CheckpointOptions }
) & {
  /** Where the model trains (default the CPU). */
  device?: Device;
};

export interface ToyRun {
  result: TrainResult;
  steps: StepMetrics[];
  completions: CompletionRecord[];
  /** Every trained parameter after the run, concatenated in the model's order. */
  weights: Float32Array;
}

/** Every parameter of a model, concatenated in the model's order. */
export function flatWeights(model: Qwen2VLForConditionalGeneration): Float32Array {
  const params = model.parameters();
  const weights = new Float32Array(params.reduce((n, p) => n + p.size, 0));
  let offset = 0;
  for (const p of params) {
    weights.set(p.toFloat32Array(), offset);
    offset += p.size;
  }
  return weights;
}

/** One training run of the toy task on a fresh tiny model, as one rank of `group` (default: alone). */
export async function runToy(spec: ToyRunSpec, group?: ProcessGroup): Promise<ToyRun> {
  const model = Qwen2VLForConditionalGeneration.fromPretrained(tinyModelDir, { device: spec.device });
  const steps: StepMetrics[] = [];
  const completions: CompletionRecord[] = [];
  const common = {
    model,
    data,
    train: samples,
    group,
    checkpoint: spec.checkpoint,
    callbacks: {
      onStep: (m: StepMetrics) => void steps.push(m),
      onCompletions: (r: CompletionRecord[]) => void completions.push(...r),
    },
  };
  const trainer =
    spec.kind === 'sft'
      ? new SFTTrainer({ ...common, config: spec.config })
      : new GRPOTrainer({ ...common, config: spec.config, rewards: evenIdReward });
  try {
    const result = await trainer.train();
    return { result, steps, completions, weights: flatWeights(model) };
  } finally {
    trainer.dispose();
    model.dispose();
  }
}
