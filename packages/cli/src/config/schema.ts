// The run config of `othink train`: zod schemas with the defaults of the paper and of R1-V / TRL
// (docs/paper-spec.md; "§n" below is a section of that spec). Keys are camelCase; TRL's snake_case
// names are converted before validation (see keys.ts).
import { z } from 'zod';

const int = z.number().int();
const posInt = int.positive();
const nonNegInt = int.nonnegative();
const nonNeg = z.number().nonnegative();
const positive = z.number().positive();

export const TASKS = ['counting', 'geometry'] as const;
export type TaskName = (typeof TASKS)[number];
/** A training task: one of TASKS, or `mixed` (both synthetic tasks, half each, shuffled). */
export const TRAIN_TASKS = [...TASKS, 'mixed'] as const;
export type TrainTaskName = (typeof TRAIN_TASKS)[number];

/** The test tasks a training task stands for. */
export function tasksOf(task: TrainTaskName): TaskName[] {
  return task === 'mixed' ? [...TASKS] : [task];
}

export const PROMPT_PRESET_NAMES = ['r1v-train', 'r1v-eval-superclevr', 'r1v-eval-geoqa', 'r1v-sft'] as const;

/** A prompt preset of @othink/data (§5) or a template of one's own. */
export const PromptSchema = z.union([
  z.enum(PROMPT_PRESET_NAMES),
  z.strictObject({
    name: z.string().default('custom'),
    question: z.string().refine((q) => q.includes('{Question}'), 'needs a {Question} placeholder'),
    system: z.string().optional(),
    imagePosition: z.enum(['before', 'after', 'none']).default('before'),
  }),
]);
export type PromptSpec = z.infer<typeof PromptSchema>;

/** The built-in random-weight model (`model.path: tiny`); see tiny-model.ts. */
export const TinyModelSchema = z.strictObject({
  hiddenSize: posInt.default(128),
  intermediateSize: posInt.default(384),
  numHiddenLayers: posInt.default(4),
  numAttentionHeads: posInt.default(4),
  numKeyValueHeads: posInt.default(2),
  visionDepth: posInt.default(2),
  visionEmbedDim: posInt.default(64),
  visionNumHeads: posInt.default(2),
  /** Std of the normal initialisation (HF initializer_range). */
  initializerRange: positive.default(0.02),
});

export const ModelSchema = z.strictObject({
  /** `tiny` (random weights, CPU-sized, task tokenizer) or a Hugging Face Qwen2-VL folder. */
  path: z.string().min(1).default('tiny'),
  device: z.enum(['cpu', 'cuda']).default('cpu'),
  /** Shape of the tiny model (only with `path: tiny`). */
  tiny: TinyModelSchema.prefault({}),
  /** Image processor bounds; default: the checkpoint's preprocessor_config.json (R1-V: 3136 / 401408, §6), tiny: 3136 / 12544. */
  minPixels: posInt.optional(),
  maxPixels: posInt.optional(),
});

export const SyntheticSchema = z.strictObject({
  /** Image size; default the generator's (counting 480x320 like CLEVR, geometry 400x300). */
  width: posInt.optional(),
  height: posInt.optional(),
  /** Counting question templates (default all: total, count, subtract, left-after-removing). */
  templates: z
    .array(z.enum(['total', 'count', 'subtract', 'left-after-removing']))
    .min(1)
    .optional(),
  minAnswer: nonNegInt.optional(),
  maxAnswer: nonNegInt.optional(),
  minObjects: nonNegInt.optional(),
  maxObjects: posInt.optional(),
  /** Geometry problem kinds (default all). */
  kinds: z.array(z.string()).min(1).optional(),
  /**
   * Generate `<think>` traces (the SFT targets); counting also takes 'brief' (one sentence with the
   * result, which tiny models learn in a few hundred steps; geometry treats it as true).
   */
  thinking: z.union([z.boolean(), z.literal('brief')]).default(true),
});

export const DataSchema = z.strictObject({
  /**
   * Which task: the synthetic generator, the accuracy reward and the default eval prompt. `mixed`:
   * both synthetic tasks, half of trainSize each (e.g. a warm-up that knows both before cross-task runs).
   */
  task: z.enum(TRAIN_TASKS).default('counting'),
  /** A dataset folder or .jsonl / .parquet file in the R1-V schema; absent: synthetic data. */
  path: z.string().optional(),
  split: z.string().default('train'),
  /** Training samples (synthetic: generated; dataset: a seeded subsample). Synthetic default 100 (§4.2 few-shot). */
  trainSize: posInt.optional(),
  /** Seed of the synthetic generator / the subsample; default: the top-level seed. */
  seed: nonNegInt.optional(),
  synthetic: SyntheticSchema.prefault({}),
  /** Prompt of GRPO rollouts (R1-V QUESTION_TEMPLATE, §5.2). */
  prompt: PromptSchema.default('r1v-train'),
  /** Prompt of SFT examples (R1-V sft.py: R1 system prompt, text then image, §5.4). */
  sftPrompt: PromptSchema.default('r1v-sft'),
  /** Left-truncate longer prompts (TRL max_prompt_length); default: no truncation. */
  maxPromptLength: posInt.optional(),
});

/** Fields every trainer has (HF TrainingArguments names, camelCase). */
function commonFields(d: {
  learningRate: number;
  lrSchedulerType: 'constant' | 'linear' | 'cosine';
  perDeviceTrainBatchSize: number;
  numTrainEpochs: number;
}) {
  return {
    /** Optimizer steps; default ceil(examples per epoch / examples per step) * numTrainEpochs. */
    maxSteps: posInt.optional(),
    numTrainEpochs: positive.default(d.numTrainEpochs),
    learningRate: nonNeg.default(d.learningRate),
    lrSchedulerType: z.enum(['constant', 'linear', 'cosine']).default(d.lrSchedulerType),
    /** Linear warm-up steps; `warmupRatio` gives them as a fraction of maxSteps instead. */
    warmupSteps: nonNegInt.optional(),
    warmupRatio: z.number().min(0).max(1).optional(),
    weightDecay: nonNeg.default(0),
    adamBeta1: z.number().min(0).lt(1).default(0.9),
    adamBeta2: z.number().min(0).lt(1).default(0.999),
    adamEpsilon: positive.default(1e-8),
    maxGradNorm: nonNeg.default(1.0),
    /** Recompute each block's activations in the backward (memory of one block, ~1 more forward of compute). */
    gradientCheckpointing: z.boolean().default(false),
    perDeviceTrainBatchSize: posInt.default(d.perDeviceTrainBatchSize),
    /** Seed of the trainer (data order, sampling); default: the top-level seed. */
    seed: nonNegInt.optional(),
  };
}

/** SFT, with R1-V's qwen2vl_sft_config.yaml values (§6): lr 2e-5, cosine, warm-up 0.1, batch 4 x 4, 1 epoch. */
export const SftSchema = z.strictObject({
  ...commonFields({
    learningRate: 2e-5,
    lrSchedulerType: 'cosine',
    perDeviceTrainBatchSize: 4,
    numTrainEpochs: 1,
  }),
  warmupRatio: z.number().min(0).max(1).default(0.1),
  gradientAccumulationSteps: posInt.default(4),
  /** R1-V max_seq_length 4096. */
  maxLength: posInt.default(4096),
});

/** The KL weight: a number is a constant beta (GRPO); `dynamic` is GRPO-D's Eq. 3 (§2). */
export const BetaSchema = z.preprocess(
  (v) => (typeof v === 'number' ? { type: 'constant', beta: v } : v),
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('constant'), beta: nonNeg }),
    z
      .strictObject({
        type: z.literal('dynamic'),
        betaMin: nonNeg,
        betaMax: nonNeg,
        /** w / t; the paper uses 0.3 for both tasks (§2). */
        exploreFraction: z.number().gt(0).lt(1).default(0.3),
      })
      .refine((b) => b.betaMax >= b.betaMin, {
        message: 'betaMax must be >= betaMin (the schedule rises from betaMin to betaMax, §2)',
        path: ['betaMax'],
      }),
    z.strictObject({
      type: z.literal('adaptive'),
      initBeta: nonNeg,
      targetKl: positive,
      horizon: positive,
    }),
  ]),
);

export const RewardSchema = z.strictObject({
  /** R = R_acc + alpha * R_format; alpha = 1 (Eq. 1, §3.1). */
  alpha: nonNeg.default(1),
  /** `r1v`: R1-V's accuracy_reward (math value check + string fallback), used for both tasks in training (§3.2); `counting`: the SuperCLEVR integer metric (§3.3). */
  accuracy: z.enum(['r1v', 'counting']).default('r1v'),
  /** `strict`: R1-V's fullmatch (§3.2); `lenient`: think then answer anywhere. */
  format: z.enum(['strict', 'lenient']).default('strict'),
});

/**
 * GRPO / GRPO-D with R1-V's settings (§6, §8): G = 8, lr 1e-6 (TRL default, linear decay),
 * temperature 1.0, top-k 50 / top-p 1.0 pinned (§8.6), beta 0.04 (TRL / GRPO default, §2),
 * epsilon 0.2 (TRL 0.16), one update per batch, loss `grpo` (per-sequence mean, Eq. 4, §8.4),
 * max completion 512 (R1-V README), 2 epochs (R1-V CLEVR script).
 */
export const GrpoSchema = z.strictObject({
  ...commonFields({
    learningRate: 1e-6,
    lrSchedulerType: 'linear',
    perDeviceTrainBatchSize: 8,
    numTrainEpochs: 2,
  }),
  /** Micro-batches per step (TRL meaning); when given without promptsPerStep it sets promptsPerStep. */
  gradientAccumulationSteps: posInt.optional(),
  numGenerations: posInt.default(8),
  /** Prompts per optimizer step; default perDeviceTrainBatchSize * gradientAccumulationSteps / G, else 1. */
  promptsPerStep: posInt.optional(),
  maxCompletionLength: posInt.default(512),
  temperature: positive.default(1.0),
  topK: nonNegInt.default(50),
  topP: z.number().gt(0).max(1).default(1.0),
  beta: BetaSchema.default({ type: 'constant', beta: 0.04 }),
  epsilon: positive.default(0.2),
  /** Upper clip bound (DAPO clip-higher); default = epsilon. */
  epsilonHigh: positive.optional(),
  numIterations: posInt.default(1),
  lossType: z.enum(['grpo', 'bnpo', 'dr_grpo', 'dapo']).default('grpo'),
  /** TRL 0.16's boolean form is accepted: true = group, false = none. */
  scaleRewards: z
    .union([z.boolean().transform((b) => (b ? 'group' : 'none')), z.enum(['group', 'batch', 'none'])])
    .default('group'),
  klEstimator: z.enum(['k1', 'k2', 'k3', 'abs']).default('k3'),
  reward: RewardSchema.prefault({}),
});

export const EvalSchema = z.strictObject({
  /** Test examples per task (R1-V: SuperCLEVR 200, GeoQA 754, §3.3 / §4.2). */
  testSize: posInt.default(200),
  /** Seed of the synthetic test set (different from the training data's). */
  seed: nonNegInt.default(1_000_003),
  /** A test dataset (folder or file); absent: synthetic test data. */
  path: z.string().optional(),
  split: z.string().default('test'),
  /** Tasks to evaluate; more than one gives the cross-task matrix (§7.2). Default: data.task. */
  tasks: z.array(z.enum(TASKS)).min(1).optional(),
  batchSize: posInt.default(8),
  /** Greedy decoding length; default per task: counting 256, geometry 1024 (§3.3). */
  maxNewTokens: posInt.optional(),
  /** Default per task: r1v-eval-superclevr / r1v-eval-geoqa (§5.3). */
  prompt: PromptSchema.optional(),
  /** Evaluate before training and after each phase. */
  beforeTraining: z.boolean().default(true),
  afterEachPhase: z.boolean().default(true),
  /** Completions kept per evaluation in eval.json. */
  keepRecords: nonNegInt.default(20),
});

export const OutputSchema = z.strictObject({
  /** Run folder; default runs/<name>-<date>-<time>. */
  dir: z.string().optional(),
  /** Checkpoint every N optimizer steps (R1-V: 100, §6); 0 = only at the end / on Ctrl-C. */
  saveSteps: nonNegInt.default(100),
  /** Keep the last K checkpoints. */
  saveTotalLimit: posInt.default(2),
  /** Without a terminal: a plain progress line every N steps ... */
  loggingSteps: posInt.default(10),
  /** ... or every S seconds, whichever comes first. */
  loggingSeconds: positive.default(30),
  /** Sampled completions written to completions.jsonl per GRPO step (0: none). */
  completionsPerStep: nonNegInt.default(4),
  /** PNG plots of the curves after each phase. */
  plots: z.boolean().default(true),
  /** `auto`: bars on a terminal, plain lines otherwise. */
  progress: z.enum(['auto', 'bars', 'plain', 'none']).default('auto'),
});

/** A phase section; null or false switch it off (e.g. `--set sft=null`). */
const phase = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === false || v === null ? undefined : v), schema.optional());

export const RunConfigSchema = z.strictObject({
  name: z.string().min(1).default('run'),
  /** The default of every other seed (model init, data, trainers). */
  seed: nonNegInt.default(42),
  model: ModelSchema.prefault({}),
  data: DataSchema.prefault({}),
  /** Supervised warm-up; absent / null / false: skipped. Runs before GRPO. */
  sft: phase(SftSchema),
  /** GRPO or GRPO-D (by `beta`); absent / null / false: skipped. */
  grpo: phase(GrpoSchema),
  eval: EvalSchema.prefault({}),
  output: OutputSchema.prefault({}),
});

export type RunConfigInput = z.input<typeof RunConfigSchema>;
export type RunConfig = z.output<typeof RunConfigSchema>;
export type SftSection = z.output<typeof SftSchema>;
export type GrpoSection = z.output<typeof GrpoSchema>;
export type BetaSpec = z.output<typeof BetaSchema>;
export type TinyModelConfig = z.output<typeof TinyModelSchema>;
