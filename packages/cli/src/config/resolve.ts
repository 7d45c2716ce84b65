// The resolved config: every default that depends on another field (steps from epochs and data
// size, warm-up from its ratio, seeds from the top-level seed, the GRPO batch, eval settings per
// task) made explicit. This is what config.resolved.yaml records and what the trainers get.
import { stringify } from 'yaml';
import { grpoBatch, isProblem } from './checks.js';
import { ConfigError } from './errors.js';
import {
  type GrpoSection,
  type PromptSpec,
  type RunConfig,
  type SftSection,
  type TaskName,
  tasksOf,
} from './schema.js';

/** Image processor bounds of the tiny model: at most 112 x 112 pixels, i.e. <= 16 image tokens. */
export const TINY_MIN_PIXELS = 56 * 56;
export const TINY_MAX_PIXELS = 112 * 112;

/** Synthetic training set size when data.trainSize is not given: the paper's few-shot 100 (§4.2). */
export const DEFAULT_SYNTHETIC_TRAIN_SIZE = 100;

export type ResolvedSft = SftSection & { maxSteps: number; warmupSteps: number; seed: number };
export type ResolvedGrpo = GrpoSection & {
  maxSteps: number;
  warmupSteps: number;
  seed: number;
  promptsPerStep: number;
  gradientAccumulationSteps: number;
  epsilonHigh: number;
};
export type ResolvedRunConfig = Omit<RunConfig, 'sft' | 'grpo'> & {
  sft: ResolvedSft | undefined;
  grpo: ResolvedGrpo | undefined;
  data: RunConfig['data'] & { seed: number; trainSize: number };
  eval: RunConfig['eval'] & { tasks: TaskName[] };
  output: RunConfig['output'] & { dir: string };
};

function warmup(phase: { warmupSteps?: number; warmupRatio?: number }, maxSteps: number): number {
  // HF: warmup_steps wins over warmup_ratio; the ratio rounds up.
  if (phase.warmupSteps !== undefined) return phase.warmupSteps;
  return phase.warmupRatio ? Math.ceil(phase.warmupRatio * maxSteps) : 0;
}

/** `runs/<name>-YYYYMMDD-HHMMSS` (local time). */
export function defaultRunDir(name: string, now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `runs/${name}-${stamp}`;
}

/**
 * Fills in the derived values. `trainExamples` is the number of training samples actually loaded
 * (a dataset can hold fewer than data.trainSize).
 */
export function resolveRunConfig(
  c: RunConfig,
  trainExamples = c.data.trainSize ?? DEFAULT_SYNTHETIC_TRAIN_SIZE,
  now = new Date(),
): ResolvedRunConfig {
  if (trainExamples < 1) throw new ConfigError('the training set is empty');
  let sft: ResolvedSft | undefined;
  if (c.sft) {
    const perStep = c.sft.perDeviceTrainBatchSize * c.sft.gradientAccumulationSteps;
    const maxSteps = c.sft.maxSteps ?? Math.ceil(Math.ceil(trainExamples / perStep) * c.sft.numTrainEpochs);
    sft = { ...c.sft, maxSteps, warmupSteps: warmup(c.sft, maxSteps), seed: c.sft.seed ?? c.seed };
  }
  let grpo: ResolvedGrpo | undefined;
  if (c.grpo) {
    const batch = grpoBatch(c.grpo);
    if (isProblem(batch)) throw new ConfigError(`${batch.path}: ${batch.message}`);
    const maxSteps =
      c.grpo.maxSteps ?? Math.ceil(Math.ceil(trainExamples / batch.promptsPerStep) * c.grpo.numTrainEpochs);
    grpo = {
      ...c.grpo,
      maxSteps,
      warmupSteps: warmup(c.grpo, maxSteps),
      seed: c.grpo.seed ?? c.seed,
      promptsPerStep: batch.promptsPerStep,
      gradientAccumulationSteps: batch.gradientAccumulationSteps,
      epsilonHigh: c.grpo.epsilonHigh ?? c.grpo.epsilon,
    };
  }
  const tiny = c.model.path === 'tiny';
  return {
    ...c,
    model: {
      ...c.model,
      minPixels: c.model.minPixels ?? (tiny ? TINY_MIN_PIXELS : undefined),
      maxPixels: c.model.maxPixels ?? (tiny ? TINY_MAX_PIXELS : undefined),
    },
    data: { ...c.data, seed: c.data.seed ?? c.seed, trainSize: trainExamples },
    sft,
    grpo,
    eval: { ...c.eval, tasks: c.eval.tasks ?? tasksOf(c.data.task) },
    output: { ...c.output, dir: c.output.dir ?? defaultRunDir(c.name, now) },
  };
}

/** Eval prompt and length for one task: R1-V's SuperCLEVR / GeoQA settings unless set (§3.3, §5.3). */
export function evalSettings(c: RunConfig, task: TaskName): { prompt: PromptSpec; maxNewTokens: number } {
  return {
    prompt: c.eval.prompt ?? (task === 'counting' ? 'r1v-eval-superclevr' : 'r1v-eval-geoqa'),
    maxNewTokens: c.eval.maxNewTokens ?? (task === 'counting' ? 256 : 1024),
  };
}

/** The resolved config as YAML, with a header naming its sources. */
export function configToYaml(c: ResolvedRunConfig | RunConfig, sources: readonly string[] = []): string {
  const header = [
    '# Resolved config of this run: every default and derived value made explicit.',
    ...(sources.length > 0 ? [`# Sources: ${sources.join(' + ')}`] : []),
    '# Re-run with: othink train <this file>',
  ];
  return `${header.join('\n')}\n${stringify(stripUndefined(c), { lineWidth: 110 })}`;
}

function stripUndefined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripUndefined);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [k, stripUndefined(x)]),
  );
}
