// `othink eval <checkpoint>`: greedy decoding on a test set, accuracy and format accuracy (R1-V's
// eval, paper-spec §3.3), for one or more tasks. Settings default to those of the run the
// checkpoint belongs to (its config.resolved.yaml), else to the schema defaults.
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { checkDevice } from '../config/checks.js';
import { ConfigError } from '../config/errors.js';
import { mergeConfig, parseRunConfig, readConfigFile } from '../config/load.js';
import { evalSettings, resolveRunConfig } from '../config/resolve.js';
import { type PromptSpec, type RunConfig, type TaskName, tasksOf } from '../config/schema.js';
import { Progress, type ProgressMode } from '../run/progress.js';
import type { EvalEntry } from '../run/run-folder.js';
import { loadTestSamples } from '../task/datasets.js';
import { EncodedTaskData } from '../task/encode.js';
import { evaluateTask } from '../task/evaluate.js';
import { loadRunProcessor } from '../task/processor.js';
import { describeModel, loadInitialModel, loadModelFolder } from './model.js';

export interface EvalOptions {
  /** A checkpoint / model folder, or `tiny` (the random tiny model). */
  checkpoint: string;
  tasks?: TaskName[];
  testSize?: number;
  seed?: number;
  batchSize?: number;
  maxNewTokens?: number;
  prompt?: PromptSpec;
  /** A test dataset instead of synthetic data. */
  data?: string;
  split?: string;
  /** Write the results (with every record) to this JSON file. */
  output?: string;
  /** Print this many completions per task. */
  show?: number;
  progress?: ProgressMode | 'auto';
  stream?: NodeJS.WritableStream;
  stdout?: NodeJS.WritableStream;
}

/** The config.resolved.yaml of the run a checkpoint belongs to (the folder or up to 3 levels up). */
export function findRunConfig(checkpoint: string): string | undefined {
  let dir = resolve(checkpoint);
  for (let up = 0; up < 4; up++) {
    const file = join(dir, 'config.resolved.yaml');
    if (existsSync(file)) return file;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

export async function runEvalCommand(o: EvalOptions): Promise<EvalEntry[]> {
  const stdout = o.stdout ?? process.stdout;
  const progress = new Progress({ mode: o.progress ?? 'auto', stream: o.stream });
  if (o.checkpoint !== 'tiny' && !existsSync(join(o.checkpoint, 'config.json'))) {
    throw new ConfigError(`${o.checkpoint}: not a model folder (no config.json)`);
  }
  const runConfigFile = o.checkpoint === 'tiny' ? undefined : findRunConfig(o.checkpoint);
  const base = runConfigFile ? readConfigFile(runConfigFile) : {};
  const evalOverrides: Record<string, unknown> = {};
  const put = (k: string, v: unknown) => {
    if (v !== undefined) evalOverrides[k] = v;
  };
  put('tasks', o.tasks);
  put('testSize', o.testSize);
  put('seed', o.seed);
  put('batchSize', o.batchSize);
  put('maxNewTokens', o.maxNewTokens);
  put('prompt', o.prompt);
  put('path', o.data);
  put('split', o.split);
  const raw = mergeConfig(base, { eval: evalOverrides, output: {} }) as Record<string, unknown>;
  let config: RunConfig = parseRunConfig(raw, runConfigFile ? `${runConfigFile} + flags` : 'flags');
  const tasks = config.eval.tasks ?? tasksOf(config.data.task);
  checkDevice(config.model.device);

  // The processor files saved with the checkpoint (or its run) decide the image size.
  const tiny =
    o.checkpoint === 'tiny'
      ? resolveRunConfig({ ...config, model: { ...config.model, path: 'tiny' } }, 1)
      : undefined;
  const proc = await loadRunProcessor(o.checkpoint, tiny ? tiny.model : {});
  const model = tiny
    ? loadInitialModel(tiny, proc.tokenizer)
    : loadModelFolder(o.checkpoint, proc.tokenizer, config.model.device);
  config = { ...config, eval: { ...config.eval, tasks } };
  progress.log(`model: ${describeModel(model, o.checkpoint)}`);
  const entries: EvalEntry[] = [];
  try {
    for (const task of tasks) {
      const test = await loadTestSamples(config, task);
      const { prompt } = evalSettings(config, task);
      const data = await EncodedTaskData.create(proc.processor, proc.imageProcessor, test.samples, {
        prompt,
        maxPromptLength: config.data.maxPromptLength,
      });
      const { entry, seconds } = await evaluateTask({
        model,
        data,
        task,
        config,
        progress,
        label: `eval ${task}`,
        stage: 'checkpoint',
        description: test.description,
        modelPath: resolve(o.checkpoint),
      });
      entries.push(entry);
      stdout.write(
        `${task}: accuracy ${(100 * entry.accuracy).toFixed(1)}%, format ${(100 * entry.formatAccuracy).toFixed(1)}% ` +
          `(n=${entry.n}, ${test.description}, ${seconds.toFixed(1)} s)\n`,
      );
      for (const r of entry.records.slice(0, o.show ?? 0)) {
        stdout.write(`  [${r.accuracy ? 'right' : 'wrong'}] ${JSON.stringify(r.completion)}\n`);
      }
    }
  } finally {
    model.dispose();
  }
  if (o.output) {
    writeFileSync(
      o.output,
      `${JSON.stringify({ checkpoint: resolve(o.checkpoint), evaluations: entries }, null, 2)}\n`,
    );
    stdout.write(`results written to ${o.output}\n`);
  }
  return entries;
}
