// Resumable training checkpoints: <dir>/checkpoint-<step>/ holds the model in Hugging Face format
// (config.json + model.safetensors, so it opens in transformers), the AdamW moments and the
// trainer state (step, data position, RNG, KL controller). Written to a temporary folder and
// renamed into place, so an interrupted save never leaves a half checkpoint; the last K are kept.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../io/checkpoint.js';
import { readSafetensorsHeader, readTensor, writeSafetensors } from '../io/safetensors.js';
import type { Qwen2VLForConditionalGeneration } from '../model/qwen2vl.js';
import type { AdamW } from '../optim/adamw.js';
import { formatShape } from '../tensor/tensor.js';

export interface CheckpointOptions {
  /** Folder that holds checkpoint-<step>/ subfolders. */
  dir: string;
  /** Save every N optimizer steps (0: only at the end / on stop). */
  saveSteps: number;
  /** Keep at most this many checkpoints (oldest removed first; 0: keep all). */
  saveTotalLimit: number;
  /** A checkpoint folder to resume from. */
  resumeFrom?: string;
}

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

/** Saves a checkpoint atomically; returns its folder. */
export function saveCheckpoint(
  options: CheckpointOptions,
  step: number,
  model: Qwen2VLForConditionalGeneration,
  optimizer: AdamW,
  state: Record<string, unknown>,
): string {
  mkdirSync(options.dir, { recursive: true });
  const final = join(options.dir, `checkpoint-${step}`);
  const tmp = join(options.dir, `.checkpoint-${step}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  model.savePretrained(tmp);
  const names = model.namedParameters().map(([n]) => n);
  const { moments } = optimizer.state();
  writeSafetensors(
    join(tmp, OPTIMIZER_FILE),
    moments.flatMap(({ m, v }, i) => [
      [`${names[i]}.exp_avg`, m],
      [`${names[i]}.exp_avg_sq`, v],
    ]),
  );
  writeFileSync(
    join(tmp, TRAINER_STATE_FILE),
    `${JSON.stringify({ ...state, step, optimizerStep: optimizer.step }, null, 2)}\n`,
  );
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  pruneCheckpoints(options);
  return final;
}

/** checkpoint-<step> folders in `dir`, oldest first. */
export function listCheckpoints(dir: string): { step: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

function pruneCheckpoints(options: CheckpointOptions): void {
  if (options.saveTotalLimit <= 0) return;
  const all = listCheckpoints(options.dir);
  for (const old of all.slice(0, Math.max(0, all.length - options.saveTotalLimit)))
    rmSync(old.path, { recursive: true, force: true });
}

/**
 * Loads a checkpoint into an existing model and optimizer (same config) and returns the trainer
 * state saved with it.
 */
export function loadCheckpoint(
  path: string,
  model: Qwen2VLForConditionalGeneration,
  optimizer: AdamW,
): Record<string, unknown> {
  const statePath = join(path, TRAINER_STATE_FILE);
  if (!existsSync(statePath))
    throw new Error(`${path}: not a training checkpoint (no ${TRAINER_STATE_FILE})`);
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>;
  const entries = openCheckpoint(path);
  for (const [name, param] of model.namedParameters()) {
    const entry = entries.get(name);
    if (!entry) throw new Error(`${path}: parameter ${name} is missing`);
    if (entry.shape.join() !== param.shape.join()) {
      throw new Error(
        `${path}: parameter ${name} has shape ${formatShape(entry.shape)}, the model ${formatShape(param.shape)}`,
      );
    }
    const t = readTensor(entry);
    param.storage.write(t.toFloat32Array(), param.offset * 4);
    t.dispose();
  }
  const optimizerEntries = readSafetensorsHeader(join(path, OPTIMIZER_FILE)).entries;
  const moments = model.namedParameters().map(([name]) => {
    const read = (key: string) => {
      const entry = optimizerEntries.get(`${name}.${key}`);
      if (!entry) throw new Error(`${path}/${OPTIMIZER_FILE}: ${name}.${key} is missing`);
      const t = readTensor(entry);
      const values = t.toFloat32Array();
      t.dispose();
      return values;
    };
    return { m: read('exp_avg'), v: read('exp_avg_sq') };
  });
  optimizer.loadState({ step: state.optimizerStep as number, moments });
  return state;
}
