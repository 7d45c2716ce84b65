// Config keys: TRL / HF snake_case names (num_generations, learning_rate, ...) become the camelCase
// names of the schema, so a TRL user's settings carry over; a few TRL names that mean something
// else here get a hint instead of a bare "unrecognized key".
import { ConfigError } from './errors.js';

/** `num_generations` -> `numGenerations`; camelCase and single words pass unchanged. */
export function toCamelCase(key: string): string {
  return key.replace(/[_-]+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** TRL / HF names whose camelCase form is not our key (anywhere, and in the model section). */
const RENAMES: Record<string, string> = { maxSeqLength: 'maxLength' };
const MODEL_RENAMES: Record<string, string> = { modelNameOrPath: 'path', nameOrPath: 'path' };

/** Keys that exist in TRL but live elsewhere (or nowhere) here: shown with the "unrecognized key" error. */
export const KEY_HINTS: Record<string, string> = {
  outputDir: 'the run folder is output.dir (or --output-dir)',
  saveSteps: 'checkpointing is set once for all phases: output.saveSteps',
  saveTotalLimit: 'checkpointing is set once for all phases: output.saveTotalLimit',
  loggingSteps: 'logging is set once for all phases: output.loggingSteps',
  perDeviceEvalBatchSize: 'evaluation settings are in eval: (eval.batchSize)',
  rewardWeights: 'the format-reward weight is grpo.reward.alpha (R = R_acc + alpha * R_format)',
  rewardFuncs: 'rewards are chosen with grpo.reward.accuracy / grpo.reward.format',
  bf16: 'training runs in float32; remove it',
  fp16: 'training runs in float32; remove it',
  torchDtype: 'training runs in float32; remove it',
  gradientCheckpointing: 'not supported; remove it',
  useVllm: 'generation runs in-process; remove it',
  deepspeed: 'not supported; remove it',
  attnImplementation: 'not supported; remove it',
  maxPixels: 'image processor bounds are model.maxPixels / model.minPixels',
  minPixels: 'image processor bounds are model.maxPixels / model.minPixels',
  datasetName: 'the dataset is data.path (a folder or .jsonl / .parquet file)',
  maxPromptLength: 'prompt truncation is data.maxPromptLength',
  modelNameOrPath: 'the model is model.path',
};

/**
 * Converts every key of a parsed config (objects at any depth) to camelCase. `where` names the file
 * or flag in errors; two spellings of one key in the same object are an error.
 */
export function normalizeKeys(value: unknown, where: string, path: string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v, i) => normalizeKeys(v, where, [...path, String(i)]));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const camel = toCamelCase(key);
    const inModel = path.length === 1 && path[0] === 'model';
    const name = (inModel ? MODEL_RENAMES[camel] : undefined) ?? RENAMES[camel] ?? camel;
    if (name in out) {
      throw new ConfigError(
        `${where}: ${[...path, origin[name]].join('.')} and ${[...path, key].join('.')} are the same setting; give it once`,
      );
    }
    origin[name] = key;
    out[name] = normalizeKeys(v, where, [...path, name]);
  }
  return out;
}

/** The closest of `candidates` to `key` (edit distance <= 3, case-insensitive), for "did you mean". */
export function closestKey(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const c of candidates) {
    const d = editDistance(key.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}
