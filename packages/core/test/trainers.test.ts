import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expectClose, fixturePath } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GRPOTrainer,
  type GrpoConfig,
  listCheckpoints,
  Qwen2VLForConditionalGeneration,
  SFTTrainer,
  type SftConfig,
  type StepMetrics,
} from '../src/index.js';
import { data, type Sample, samples, toyCommonConfig, toyGrpoConfig } from './train-helpers.js';

// The toy task on the tiny fixture model (train-helpers.ts): the answer to a prompt is its last id
// repeated. Enough to exercise the trainers' mechanics.
const modelDir = dirname(fixturePath('qwen2vl-tiny/model.safetensors'));
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'othink-train-'));
  dirs.push(d);
  return d;
}

const common = toyCommonConfig;

describe('SFTTrainer', () => {
  it('lowers the loss, and a resumed run repeats the uninterrupted one bit for bit', async () => {
    const config: SftConfig = { ...common, maxSteps: 6, perDeviceTrainBatchSize: 3, maxLength: 64 };
    const run = async (dir: string, resumeFrom?: string) => {
      const model = Qwen2VLForConditionalGeneration.fromPretrained(modelDir);
      const steps: StepMetrics[] = [];
      const trainer = new SFTTrainer({
        model,
        data,
        train: samples,
        config,
        callbacks: { onStep: (m) => void steps.push(m) },
        checkpoint: { dir, saveSteps: 3, saveTotalLimit: 2, resumeFrom },
      });
      const result = await trainer.train();
      trainer.dispose();
      model.dispose();
      return { steps, result };
    };
    const dir = tempDir();
    const full = await run(dir);
    expect(full.result).toMatchObject({ steps: 6, stoppedEarly: false });
    expect(full.steps.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(full.steps[5].loss).toBeLessThan(full.steps[0].loss);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([3, 6]);
    const resumed = await run(tempDir(), join(dir, 'checkpoint-3'));
    expect(resumed.steps.map((m) => m.step)).toEqual([4, 5, 6]);
    expect(resumed.steps.map((m) => m.loss)).toEqual(full.steps.slice(3).map((m) => m.loss));
    expect(resumed.steps.map((m) => m.grad_norm)).toEqual(full.steps.slice(3).map((m) => m.grad_norm));
  });

  it('gradientCheckpointing: the same steps bit for bit, with a lower peak; the peak is in the metrics', async () => {
    const run = async (gradientCheckpointing: boolean) => {
      const model = Qwen2VLForConditionalGeneration.fromPretrained(modelDir);
      const steps: StepMetrics[] = [];
      const trainer = new SFTTrainer({
        model,
        data,
        train: samples,
        config: { ...common, maxSteps: 3, perDeviceTrainBatchSize: 6, maxLength: 64, gradientCheckpointing },
        callbacks: { onStep: (m) => void steps.push(m) },
      });
      await trainer.train();
      trainer.dispose();
      model.dispose();
      return steps;
    };
    const plain = await run(false);
    const checkpointed = await run(true);
    expect(checkpointed.map((m) => m.loss)).toEqual(plain.map((m) => m.loss));
    expect(checkpointed.map((m) => m.grad_norm)).toEqual(plain.map((m) => m.grad_norm));
    for (const [a, b] of plain.map((m, i) => [m, checkpointed[i]])) {
      // The peak includes the weights, gradients and AdamW moments (~2.3 MB here); the activations
      // of two layers become one block's.
      expect(a['perf/max_memory_allocated_gb']).toBeGreaterThan(4 * 194_944 * 4 * 2 ** -30);
      expect(b['perf/max_memory_allocated_gb']).toBeLessThan(a['perf/max_memory_allocated_gb']!);
      expect(a['perf/memory_reserved_gb']).toBeUndefined(); // CPU: no caching allocator
    }
  });

  it('stops cleanly on request with a checkpoint', async () => {
    const model = Qwen2VLForConditionalGeneration.fromPretrained(modelDir);
    const dir = tempDir();
    let n = 0;
    const trainer = new SFTTrainer({
      model,
      data,
      train: samples,
      config: { ...common, maxSteps: 10, perDeviceTrainBatchSize: 2, maxLength: 64 },
      callbacks: { onStep: () => void n++, shouldStop: () => n >= 2 },
      checkpoint: { dir, saveSteps: 0, saveTotalLimit: 0 },
    });
    const result = await trainer.train();
    expect(result).toMatchObject({ steps: 2, stoppedEarly: true, reason: 'requested' });
    expect(result.lastCheckpoint).toBe(join(dir, 'checkpoint-2'));
    trainer.dispose();
    model.dispose();
  });
});

describe('GRPOTrainer', () => {
  // Reward: how many completion tokens repeat the prompt's last id (a verifiable toy reward).
  const rewards = async (completions: string[], batch: Sample[]) => {
    const total = completions.map(
      (c, i) => c.split(' ').filter((t) => Number(t) === batch[i].prompt.at(-1)).length / 4,
    );
    return { total, perFunction: { repeat: total } };
  };
  const config: GrpoConfig = toyGrpoConfig;

  /** A GRPO run on a fresh copy of the tiny model: its step metrics, completions and result. */
  const runGrpo = async (dir: string, o: { saveSteps: number; stopAfter?: number; resumeFrom?: string }) => {
    const model = Qwen2VLForConditionalGeneration.fromPretrained(modelDir);
    const steps: StepMetrics[] = [];
    let completions = 0;
    const trainer = new GRPOTrainer({
      model,
      data,
      train: samples,
      rewards,
      config,
      callbacks: {
        onStep: (m) => void steps.push(m),
        onCompletions: (r) => {
          completions += r.length;
        },
        shouldStop: () => o.stopAfter !== undefined && steps.length >= o.stopAfter,
      },
      checkpoint: { dir, saveSteps: o.saveSteps, saveTotalLimit: 0, resumeFrom: o.resumeFrom },
    });
    const result = await trainer.train();
    trainer.dispose();
    model.dispose();
    return { steps, completions, result };
  };

  it('logs every metric, follows the GRPO-D schedule, and resumes exactly', async () => {
    const run = (dir: string, resumeFrom?: string) => runGrpo(dir, { saveSteps: 2, resumeFrom });
    const dir = tempDir();
    const full = await run(dir);
    expect(full.steps).toHaveLength(4);
    // One rollout of 2 prompts x 4 completions per numIterations = 2 steps.
    expect(full.completions).toBe(16);
    for (const m of full.steps) {
      for (const key of [
        'loss',
        'reward',
        'reward_std',
        'rewards/repeat/mean',
        'kl',
        'beta',
        'clip_ratio',
        'completion_length',
        'learning_rate',
        'grad_norm',
        'tokens_per_second',
      ]) {
        expect(Number.isFinite(m[key]), `${key} at step ${m.step}`).toBe(true);
      }
    }
    // beta(s) of Eq. 3 with t = 4, w = 1.2: 0.07, 0.045, 0.0443, 0.0729 (s = 0..3).
    expectClose(
      full.steps.map((m) => m.beta as number),
      [0, 1, 2, 3].map((s) => (s <= 1.2 ? 0.07 - 0.03 * (s / 1.2) : 0.04 + (0.06 * (s - 1.2)) / 2.8)),
      { atol: 1e-12 },
      'beta',
    );
    // The second update of a rollout sees a ratio != 1 (the policy moved): clipping can happen.
    expect(full.steps[0].kl).toBe(0);
    const resumed = await run(tempDir(), join(dir, 'checkpoint-2'));
    expect(resumed.steps.map((m) => m.loss)).toEqual(full.steps.slice(2).map((m) => m.loss));
    expect(resumed.steps.map((m) => m.reward)).toEqual(full.steps.slice(2).map((m) => m.reward));
  });

  it('with numIterations 2, a stop or a checkpoint after the first update of a rollout waits for its second', async () => {
    const run = (dir: string, o: { stopAfter?: number; saveSteps?: number; resumeFrom?: string }) =>
      runGrpo(dir, { ...o, saveSteps: o.saveSteps ?? 0 });
    const full = await run(tempDir(), {});
    // Ctrl-C after step 1 (mid-rollout): step 2 still runs, then checkpoint-2.
    const dir = tempDir();
    const stopped = await run(dir, { stopAfter: 1 });
    expect(stopped.result.stoppedEarly).toBe(true);
    expect(stopped.steps.map((m) => m.step)).toEqual([1, 2]);
    expect(stopped.result.lastCheckpoint).toBe(join(dir, 'checkpoint-2'));
    const resumed = await run(tempDir(), { resumeFrom: join(dir, 'checkpoint-2') });
    expect(resumed.steps.map((m) => m.loss)).toEqual(full.steps.slice(2).map((m) => m.loss));
    // saveSteps 1: checkpoints only where a rollout ends.
    const every = tempDir();
    await run(every, { saveSteps: 1 });
    expect(
      readdirSync(every)
        .filter((f) => f.startsWith('checkpoint-'))
        .sort(),
    ).toEqual(['checkpoint-2', 'checkpoint-4']);
  });

  it('explains a micro-batch that does not divide the step', () => {
    const model = Qwen2VLForConditionalGeneration.fromPretrained(modelDir);
    expect(
      () =>
        new GRPOTrainer({
          model,
          data,
          train: samples,
          rewards,
          config: { ...config, perDeviceTrainBatchSize: 3 },
        }),
    ).toThrow(
      /perDeviceTrainBatchSize 3 must divide the 8 completions of a step \(promptsPerStep 2 x numGenerations 4\)/,
    );
    model.dispose();
  });
});
