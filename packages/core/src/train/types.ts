// What the trainers take and report. They see data through small structural interfaces, so
// @othink/core does not depend on @othink/data or @othink/rewards: the CLI (or a user) wires the
// processor, the datasets and the reward functions in.

/** Left-padded prompts with their images (structurally @othink/data's PromptBatch). */
export interface PromptBatchLike {
  batchSize: number;
  seqLen: number;
  inputIds: Int32Array;
  attentionMask: Int32Array;
  /** [patches, patchDim] of every row's images, in row order. */
  pixelValues: Float32Array;
  patchDim: number;
  /** [images, 3] (t, h, w). */
  imageGridThw: Int32Array;
  /** [B] images of each row. */
  imagesPerRow: Int32Array;
}

/** How a trainer turns its samples into model inputs and completions back into text. */
export interface TrainDataAdapter<S> {
  /** Left-padded prompts (with the generation prompt) for generation. */
  encodePrompts(samples: S[]): PromptBatchLike;
  /** Prompt + target answer with labels, for SFT. */
  encodeSft(samples: S[]): SftBatchLike;
  /** Text of generated ids, special tokens skipped (reward functions see this). */
  decode(ids: ArrayLike<number>): string;
  /** A short text of the sample's prompt, for logged completions. */
  promptText(sample: S): string;
  /** Ids that end a completion (<|im_end|>, <|endoftext|>). */
  stopTokenIds: number[];
  padTokenId: number;
}

/** Full sequences with labels (-100 outside the assistant answer): @othink/data's SftBatch. */
export interface SftBatchLike extends Omit<PromptBatchLike, 'attentionMask'> {
  attentionMask: Int32Array;
  labels: Int32Array;
}

/** Scores completions: the total reward per completion and each function's values (for logging). */
export type RewardScorer<S> = (
  completions: string[],
  samples: S[],
) => Promise<{ total: number[]; perFunction: Record<string, number[]> }>;

export type LrSchedulerType = 'constant' | 'linear' | 'cosine';

/** Settings shared by the trainers (names follow TRL / HF TrainingArguments, camelCase). */
export interface CommonTrainConfig {
  /** Optimizer steps of the run (t of the GRPO-D schedule). */
  maxSteps: number;
  learningRate: number;
  lrSchedulerType: LrSchedulerType;
  warmupSteps: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  maxGradNorm: number;
  /** Micro-batch size (SFT: examples; GRPO: completions). */
  perDeviceTrainBatchSize: number;
  gradientAccumulationSteps: number;
  seed: number;
  /**
   * Recompute each decoder layer's and vision block's activations in the backward instead of
   * keeping them (TRL's name): activation memory of one block instead of all, for about one more
   * forward of compute. Default false.
   */
  gradientCheckpointing?: boolean;
}

export type KlScheduleSpec =
  | { type: 'constant'; beta: number }
  /** GRPO-D, the paper's Eq. 3. */
  | { type: 'dynamic'; betaMin: number; betaMax: number; exploreFraction: number }
  /** PPO-style controller on the KL weight: beta *= 1 + clip((kl - target) / target, -0.2, 0.2) * n / horizon. */
  | { type: 'adaptive'; initBeta: number; targetKl: number; horizon: number };

export interface GrpoConfig extends CommonTrainConfig {
  /** G completions per prompt (R1-V: 8). */
  numGenerations: number;
  /** Prompts per optimizer step; the step holds promptsPerStep * numGenerations completions. */
  promptsPerStep: number;
  maxCompletionLength: number;
  /** Sampling, pinned explicitly (never taken from a checkpoint's generation_config). */
  temperature: number;
  topK: number;
  topP: number;
  beta: KlScheduleSpec;
  epsilon: number;
  epsilonHigh: number;
  /** Policy updates per generation batch (> 1 uses the clipped ratio against sampling-time log-probs). */
  numIterations: number;
  lossType: 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo';
  scaleRewards: 'group' | 'batch' | 'none';
  klEstimator: 'k1' | 'k2' | 'k3' | 'abs';
}

export interface SftConfig extends CommonTrainConfig {
  maxLength: number;
}

/** What one step computed (keys as TRL logs them). */
export interface StepValues {
  phase: 'sft' | 'grpo';
  loss: number;
  tokens_per_second: number;
  /** GRPO only: */
  reward?: number;
  reward_std?: number;
  kl?: number;
  beta?: number;
  clip_ratio?: number;
  'clip_ratio/low'?: number;
  'clip_ratio/high'?: number;
  completion_length?: number;
  /** `rewards/<name>/mean` per reward function. */
  [key: string]: number | string | undefined;
}

/** One logged optimizer step. */
export interface StepMetrics extends StepValues {
  step: number;
  learning_rate: number;
  grad_norm: number;
  /** Peak tensor memory of the step on the model's device, GiB. */
  'perf/max_memory_allocated_gb'?: number;
  /** CUDA: memory the caching allocator holds from the driver at the step's end (cached blocks included), GiB. */
  'perf/memory_reserved_gb'?: number;
}

export interface CompletionRecord {
  step: number;
  prompt: string;
  completion: string;
  reward: number;
  rewards: Record<string, number>;
  advantage: number;
}

export interface TrainerCallbacks {
  /** After every optimizer step. */
  onStep?: (metrics: StepMetrics) => void | Promise<void>;
  /** Sampled completions of a GRPO step (for the run folder). */
  onCompletions?: (records: CompletionRecord[]) => void | Promise<void>;
  /** Asked after every step: true stops the run cleanly after that step (Ctrl-C). */
  shouldStop?: () => boolean;
}
