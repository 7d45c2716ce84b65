// Training and test samples of a run: the synthetic counting / geometry tasks of @othink/data, or
// an R1-V dataset (folder, .jsonl or .parquet) read with loadDataset.
import {
  COUNTING_MIN_SIZE,
  type CountingTaskOptions,
  GEOMETRY_KINDS,
  GEOMETRY_MIN_SIZE,
  type GeometryKind,
  type GeometryTaskOptions,
  generateCountingTask,
  generateGeometryTask,
  loadDataset,
  type R1VSample,
  subsample,
} from '@othink/data';
import { ConfigError } from '../config/errors.js';
import { DEFAULT_SYNTHETIC_TRAIN_SIZE } from '../config/resolve.js';
import type { RunConfig, TaskName } from '../config/schema.js';

export interface TaskSamples {
  samples: R1VSample[];
  /** Where they came from, for logs: `synthetic counting (n=100, seed=42)` or the dataset path. */
  description: string;
}

type Synthetic = RunConfig['data']['synthetic'];

/** Synthetic samples; task-specific `synthetic` options (templates, kinds, answer range) apply to their own task only. */
export function syntheticSamples(
  task: TaskName,
  n: number,
  seed: number,
  synthetic?: Synthetic,
): TaskSamples {
  const s = synthetic;
  const thinking = s?.thinking ?? true;
  const description = `synthetic ${task} (n=${n}, seed=${seed})`;
  if (task === 'counting') {
    const o: CountingTaskOptions = { n, seed, thinking };
    if (s?.width !== undefined) o.width = s.width;
    if (s?.height !== undefined) o.height = s.height;
    if (s?.templates) o.templates = s.templates;
    if (s?.minAnswer !== undefined) o.minAnswer = s.minAnswer;
    if (s?.maxAnswer !== undefined) o.maxAnswer = s.maxAnswer;
    if (s?.minObjects !== undefined) o.minObjects = s.minObjects;
    if (s?.maxObjects !== undefined) o.maxObjects = s.maxObjects;
    try {
      return { samples: generateCountingTask(o), description };
    } catch (e) {
      throw new ConfigError(`data.synthetic (counting): ${(e as Error).message}`);
    }
  }
  const o: GeometryTaskOptions = { n, seed, thinking: thinking !== false };
  if (s?.width !== undefined) o.width = s.width;
  if (s?.height !== undefined) o.height = s.height;
  if (s?.kinds) {
    const unknown = s.kinds.filter((k) => !(GEOMETRY_KINDS as readonly string[]).includes(k));
    if (unknown.length > 0) {
      throw new ConfigError(
        `data.synthetic.kinds: unknown geometry kind(s) ${unknown.join(', ')}; kinds: ${GEOMETRY_KINDS.join(', ')}`,
      );
    }
    o.kinds = s.kinds as GeometryKind[];
  }
  try {
    return { samples: generateGeometryTask(o), description };
  } catch (e) {
    throw new ConfigError(`data.synthetic (geometry): ${(e as Error).message}`);
  }
}

/** The training samples of a run. */
export async function loadTrainSamples(c: RunConfig): Promise<TaskSamples> {
  const seed = c.data.seed ?? c.seed;
  if (c.data.path === undefined) {
    const n = c.data.trainSize ?? DEFAULT_SYNTHETIC_TRAIN_SIZE;
    if (c.data.task !== 'mixed') return syntheticSamples(c.data.task, n, seed, c.data.synthetic);
    // Half of each task (counting gets the odd one), in a seeded order so batches mix them.
    const counting = syntheticSamples('counting', Math.ceil(n / 2), seed, c.data.synthetic);
    const geometry = syntheticSamples('geometry', Math.floor(n / 2), seed + 1, c.data.synthetic);
    return {
      samples: subsample([...counting.samples, ...geometry.samples], n, seed),
      description: `${counting.description} + ${geometry.description}, shuffled`,
    };
  }
  const ds = await loadDataset(c.data.path, { split: c.data.split });
  const n = ds.samples.length;
  if (n === 0) throw new ConfigError(`data.path ${c.data.path}: the ${c.data.split} split is empty`);
  if (c.data.trainSize !== undefined && c.data.trainSize > n) {
    throw new ConfigError(
      `data.trainSize ${c.data.trainSize}: ${c.data.path} has only ${n} ${c.data.split} samples; lower it or leave it out to use all`,
    );
  }
  const samples = c.data.trainSize === undefined ? ds.samples : subsample(ds.samples, c.data.trainSize, seed);
  return { samples, description: `${c.data.path} (${c.data.split}, ${samples.length} of ${n} samples)` };
}

/**
 * Synthetic options for a task's test set. The trained task (both for `mixed`) uses data.synthetic;
 * another task's cross-task set takes its image size when that task can be drawn at it (so it looks
 * like what the model saw), else that task's default size, and never the task-specific fields.
 */
function crossTaskSynthetic(c: RunConfig, task: TaskName): Synthetic | undefined {
  const s = c.data.synthetic;
  if (task === c.data.task || c.data.task === 'mixed') return s;
  const min = task === 'geometry' ? GEOMETRY_MIN_SIZE : COUNTING_MIN_SIZE;
  const sized = s.width !== undefined && s.height !== undefined && s.width >= min && s.height >= min;
  return { thinking: s.thinking, ...(sized ? { width: s.width, height: s.height } : {}) } as Synthetic;
}

/** The test samples of one task: eval.path (used whole when smaller than eval.testSize), else a synthetic set with eval.seed. */
export async function loadTestSamples(c: RunConfig, task: TaskName): Promise<TaskSamples> {
  if (c.eval.path !== undefined) {
    const ds = await loadDataset(c.eval.path, { split: c.eval.split });
    const n = ds.samples.length;
    if (n === 0) throw new ConfigError(`eval.path ${c.eval.path}: the ${c.eval.split} split is empty`);
    const samples = n > c.eval.testSize ? subsample(ds.samples, c.eval.testSize, c.eval.seed) : ds.samples;
    return { samples, description: `${c.eval.path} (${c.eval.split}, ${samples.length} of ${n} samples)` };
  }
  return syntheticSamples(task, c.eval.testSize, c.eval.seed, crossTaskSynthetic(c, task));
}
