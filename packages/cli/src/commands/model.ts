// Loading the model of a run: the tiny random-weight model or a Hugging Face folder, and the
// conversion of the resolved config sections into the trainers' configs.
import {
  type GrpoConfig,
  parseQwen2VLConfig,
  Qwen2VLForConditionalGeneration,
  type SftConfig,
} from '@othink/core';
import type { Qwen2Tokenizer } from '@othink/data';
import type { ResolvedGrpo, ResolvedRunConfig, ResolvedSft } from '../config/resolve.js';
import { tinyQwen2VLConfig } from '../tiny-model.js';

/** The starting model of a run: `tiny` (seeded random weights) or a checkpoint folder. */
export function loadInitialModel(
  c: ResolvedRunConfig,
  tokenizer: Qwen2Tokenizer,
): Qwen2VLForConditionalGeneration {
  const device = c.model.device;
  if (c.model.path === 'tiny') {
    const json = tinyQwen2VLConfig(tokenizer, c.model.tiny);
    return Qwen2VLForConditionalGeneration.fromConfig(parseQwen2VLConfig(json, 'tiny model config'), {
      seed: c.seed,
      initializerRange: c.model.tiny.initializerRange,
      device,
    });
  }
  return loadModelFolder(c.model.path, tokenizer, device);
}

/** A Hugging Face Qwen2-VL folder, checked against the tokenizer's vocabulary. */
export function loadModelFolder(
  dir: string,
  tokenizer: Qwen2Tokenizer,
  device: 'cpu' | 'cuda' = 'cpu',
): Qwen2VLForConditionalGeneration {
  const model = Qwen2VLForConditionalGeneration.fromPretrained(dir, { device });
  if (tokenizer.vocabSize > model.config.text.vocabSize) {
    model.dispose();
    throw new Error(
      `${dir}: the model has ${model.config.text.vocabSize} token ids but its tokenizer ${tokenizer.vocabSize}; they do not belong together`,
    );
  }
  return model;
}

/** One line describing a model: size and shape. */
export function describeModel(model: Qwen2VLForConditionalGeneration, path: string): string {
  const t = model.config.text;
  const v = model.config.vision;
  const params = model.numParameters();
  const size =
    params >= 1e9
      ? `${(params / 1e9).toFixed(2)} B`
      : params >= 1e6
        ? `${(params / 1e6).toFixed(2)} M`
        : `${(params / 1e3).toFixed(1)} K`;
  return `${path === 'tiny' ? 'tiny Qwen2-VL (random weights)' : path}: ${size} parameters (text ${t.numHiddenLayers} x ${t.hiddenSize}, vision ${v.depth} x ${v.embedDim}, vocab ${t.vocabSize})`;
}

function common(p: ResolvedSft | ResolvedGrpo) {
  return {
    maxSteps: p.maxSteps,
    learningRate: p.learningRate,
    lrSchedulerType: p.lrSchedulerType,
    warmupSteps: p.warmupSteps,
    weightDecay: p.weightDecay,
    adamBeta1: p.adamBeta1,
    adamBeta2: p.adamBeta2,
    adamEpsilon: p.adamEpsilon,
    maxGradNorm: p.maxGradNorm,
    gradientCheckpointing: p.gradientCheckpointing,
    perDeviceTrainBatchSize: p.perDeviceTrainBatchSize,
    seed: p.seed,
  };
}

export function toSftConfig(s: ResolvedSft): SftConfig {
  return { ...common(s), gradientAccumulationSteps: s.gradientAccumulationSteps, maxLength: s.maxLength };
}

export function toGrpoConfig(g: ResolvedGrpo): GrpoConfig {
  return {
    ...common(g),
    gradientAccumulationSteps: g.gradientAccumulationSteps,
    numGenerations: g.numGenerations,
    promptsPerStep: g.promptsPerStep,
    maxCompletionLength: g.maxCompletionLength,
    temperature: g.temperature,
    topK: g.topK,
    topP: g.topP,
    beta: g.beta,
    epsilon: g.epsilon,
    epsilonHigh: g.epsilonHigh,
    numIterations: g.numIterations,
    lossType: g.lossType,
    scaleRewards: g.scaleRewards,
    klEstimator: g.klEstimator,
  };
}
