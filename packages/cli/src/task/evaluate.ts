// One task's greedy evaluation as `othink train` and `othink eval` run it: a progress bar over the
// test samples, the task's scorer and eval settings, and the eval.json entry.
import { type EvalResult, evaluate, type Qwen2VLForConditionalGeneration } from '@othink/core';
import { evalSettings } from '../config/resolve.js';
import type { RunConfig, TaskName } from '../config/schema.js';
import type { Progress } from '../run/progress.js';
import type { EvalEntry } from '../run/run-folder.js';
import type { EncodedTaskData } from './encode.js';
import { evalScorer } from './rewards.js';

export interface TaskEvalOptions {
  model: Qwen2VLForConditionalGeneration;
  data: EncodedTaskData;
  task: TaskName;
  config: RunConfig;
  progress: Progress;
  /** Progress bar label, e.g. `eval counting (after sft)`. */
  label: string;
  /** `before`, `after sft`, ... or `checkpoint`. */
  stage: string;
  /** Where the test samples came from. */
  description: string;
  /** The evaluated model folder, when it is one. */
  modelPath?: string;
  /** Completions kept in the entry (default all). */
  keepRecords?: number;
}

/** The eval.json entry of one task and the seconds it took. */
export async function evaluateTask(o: TaskEvalOptions): Promise<{ entry: EvalEntry; seconds: number }> {
  const { maxNewTokens } = evalSettings(o.config, o.task);
  const t0 = Date.now();
  o.progress.start(o.label, o.data.samples.length, 0, 'sample');
  let result: EvalResult;
  try {
    result = await evaluate(o.model, o.data, o.data.samples, evalScorer(o.task), {
      batchSize: o.config.eval.batchSize,
      maxNewTokens,
      onProgress: (n) => o.progress.update({ step: n }),
    });
  } finally {
    o.progress.end();
  }
  const entry: EvalEntry = {
    stage: o.stage,
    task: o.task,
    accuracy: result.accuracy,
    formatAccuracy: result.formatAccuracy,
    n: result.n,
    data: o.description,
    ...(o.modelPath !== undefined ? { model: o.modelPath } : {}),
    time: new Date().toISOString(),
    records: o.keepRecords === undefined ? result.records : result.records.slice(0, o.keepRecords),
  };
  return { entry, seconds: (Date.now() - t0) / 1000 };
}
