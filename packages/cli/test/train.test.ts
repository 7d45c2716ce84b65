// End to end: `othink train` on a minuscule config (a 1-layer tiny Qwen2-VL, 8 synthetic counting
// samples, a few SFT and GRPO steps), then eval / generate on what it saved, Ctrl-C and resume.
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { writeTaskDataset } from '@othink/data';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runEvalCommand } from '../src/commands/eval.js';
import { runGenerate } from '../src/commands/generate.js';
import { loadInitialModel } from '../src/commands/model.js';
import { runTrain } from '../src/commands/train.js';
import { loadRunConfig, parseRunConfig } from '../src/config/load.js';
import { resolveRunConfig } from '../src/config/resolve.js';
import { StopSignal } from '../src/run/interrupt.js';
import { readJsonl } from '../src/run/jsonl.js';
import { syntheticSamples } from '../src/task/datasets.js';
import { loadRunProcessor, saveRunProcessor } from '../src/task/processor.js';

const MINI = `
name: mini
seed: 3
model:
  path: tiny
  tiny: { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1,
          visionDepth: 1, visionEmbedDim: 32, visionNumHeads: 2 }
  maxPixels: 3136
data:
  task: counting
  trainSize: 8
  synthetic: { width: 112, height: 84, templates: [total], minAnswer: 1, maxAnswer: 3 }
  prompt: r1v-train
  sftPrompt: r1v-train
sft:
  maxSteps: 3
  learningRate: 1.0e-3
  perDeviceTrainBatchSize: 4
  gradientAccumulationSteps: 1
grpo:
  maxSteps: 2
  numGenerations: 4
  promptsPerStep: 1
  perDeviceTrainBatchSize: 2
  learningRate: 1.0e-4
  maxCompletionLength: 8
  beta: { type: dynamic, betaMin: 0.04, betaMax: 0.1 }
eval:
  testSize: 4
  batchSize: 4
  maxNewTokens: 8
  prompt: r1v-train
output:
  saveSteps: 1
  saveTotalLimit: 2
  loggingSteps: 1
  completionsPerStep: 3
  progress: plain
`;

function sink(onWrite?: (text: string) => void): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      onWrite?.(String(chunk));
      cb();
    },
  }) as Writable & { text: () => string };
  w.text = () => chunks.join('');
  return w;
}

function setup(): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'othink-train-'));
  const config = join(dir, 'mini.yaml');
  writeFileSync(config, MINI);
  return { dir, config };
}

/** A stop signal that never touches the process, raised by a test. */
function testSignal(): { signal: StopSignal; target: EventEmitter } {
  const target = new EventEmitter();
  return { signal: new StopSignal({ target, exit: () => {}, log: () => {} }).install(), target };
}

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

describe('othink train, end to end', () => {
  it('runs SFT then GRPO-D and leaves a complete run folder', async () => {
    const { dir, config } = setup();
    const runDir = join(dir, 'run');
    const stream = sink();
    const stdout = sink();
    const summary = await runTrain({
      config,
      flags: { outputDir: runDir },
      stream,
      stdout,
      signal: testSignal().signal,
    });
    expect(summary.status).toBe('done');
    expect(summary.phases.sft).toMatchObject({ status: 'done', steps: 3, maxSteps: 3, final: 'sft/final' });
    expect(summary.phases.grpo).toMatchObject({ status: 'done', steps: 2, maxSteps: 2, final: 'grpo/final' });

    // metrics.jsonl: one line per step with the TRL-named metrics.
    const metrics = readJsonl(join(runDir, 'metrics.jsonl')).records;
    expect(metrics.map((m) => `${m.phase}${m.step}`)).toEqual(['sft1', 'sft2', 'sft3', 'grpo1', 'grpo2']);
    for (const m of metrics) {
      for (const k of ['loss', 'learning_rate', 'grad_norm', 'tokens_per_second', 'time'])
        expect(typeof m[k], k).toBe('number');
    }
    for (const m of metrics.filter((x) => x.phase === 'grpo')) {
      for (const k of [
        'reward',
        'reward_std',
        'rewards/accuracy_reward/mean',
        'rewards/format_reward/mean',
        'kl',
        'beta',
        'clip_ratio',
        'clip_ratio/low',
        'clip_ratio/high',
        'completion_length',
      ]) {
        expect(typeof m[k], k).toBe('number');
      }
    }
    // GRPO-D's beta starts at beta_mid = 0.07 (Eq. 3).
    expect(metrics[3].beta).toBeCloseTo(0.07, 6);

    // Sampled completions, at most completionsPerStep per step.
    const completions = readJsonl(join(runDir, 'completions.jsonl')).records;
    expect(completions).toHaveLength(6);
    expect(completions[0]).toMatchObject({ phase: 'grpo', step: 1 });
    expect(typeof completions[0].completion).toBe('string');
    expect(completions[0].prompt).toMatch(/How many (items|objects) are there/);

    // Checkpoints every step, the last 2 kept; final models with their processor files.
    expect(readdirSync(join(runDir, 'sft')).sort()).toEqual(['checkpoint-2', 'checkpoint-3', 'final']);
    expect(readdirSync(join(runDir, 'grpo')).sort()).toEqual(['checkpoint-1', 'checkpoint-2', 'final']);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'preprocessor_config.json']) {
      expect(existsSync(join(runDir, 'grpo', 'final', f)), f).toBe(true);
    }
    expect(existsSync(join(runDir, 'processor', 'tokenizer.json'))).toBe(true);

    // The resolved config is complete and valid.
    const resolved = parse(readFileSync(join(runDir, 'config.resolved.yaml'), 'utf8'));
    expect(resolved.grpo).toMatchObject({
      maxSteps: 2,
      promptsPerStep: 1,
      gradientAccumulationSteps: 2,
      seed: 3,
    });
    expect(() => parseRunConfig(resolved)).not.toThrow();

    // Evaluations before and after each phase.
    const evalFile = JSON.parse(readFileSync(join(runDir, 'eval.json'), 'utf8'));
    expect(Object.keys(evalFile.accuracy)).toEqual(['before', 'after sft', 'after grpo']);
    expect(evalFile.evaluations[0]).toMatchObject({ task: 'counting', n: 4 });
    expect(evalFile.evaluations[0].records).toHaveLength(4);

    // Plots.
    for (const f of ['sft-loss.png', 'grpo-reward.png', 'grpo-kl.png', 'eval-accuracy.png']) {
      expect([...readFileSync(join(runDir, 'plots', f)).subarray(0, 8)], f).toEqual(PNG);
    }

    // What the user saw: plain progress lines and a summary table.
    expect(stream.text()).toMatch(/\[sft\] step 3\/3 \(100%\) \| loss [\d.]+ \|/);
    expect(stream.text()).toMatch(/\[grpo\] step 2\/2 \(100%\) \| loss .* \| reward .* \| beta 0\.05714 \|/);
    expect(stream.text()).toMatch(/eval before, counting: accuracy [\d.]+%, format [\d.]+% \(n=4/);
    expect(stdout.text()).toMatch(
      /accuracy +counting\nbefore +[\d.]+%\nafter sft +[\d.]+%\nafter grpo +[\d.]+%/,
    );

    // The saved model works with eval and generate.
    const evalOut = sink();
    const entries = await runEvalCommand({
      checkpoint: join(runDir, 'grpo', 'final'),
      testSize: 2,
      progress: 'none',
      stdout: evalOut,
      output: join(dir, 'eval-out.json'),
    });
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ task: 'counting', n: 2 });
    expect(evalOut.text()).toMatch(/^counting: accuracy [\d.]+%, format [\d.]+% \(n=2, synthetic counting/);
    expect(JSON.parse(readFileSync(join(dir, 'eval-out.json'), 'utf8')).evaluations[0].records).toHaveLength(
      2,
    );
    // A checkpoint folder finds the processor of its run.
    const fromCheckpoint = await runEvalCommand({
      checkpoint: join(runDir, 'grpo', 'checkpoint-1'),
      testSize: 2,
      tasks: ['counting', 'geometry'],
      progress: 'none',
      stdout: sink(),
    });
    expect(fromCheckpoint.map((e) => e.task)).toEqual(['counting', 'geometry']);

    const genOut = sink();
    const texts = await runGenerate({
      checkpoint: join(runDir, 'grpo', 'final'),
      prompt: 'How many items are there in the image?',
      template: 'r1v-train',
      maxNewTokens: 5,
      num: 2,
      temperature: 1,
      stdout: genOut,
      stderr: sink(),
    });
    expect(texts).toHaveLength(2);
    expect(genOut.text()).toContain('--- 2\n');
  });

  it('Ctrl-C stops after the step with a checkpoint; --resume finishes the run as if uninterrupted', async () => {
    const { dir, config } = setup();
    // Reference: the same run without interruption.
    const ref = join(dir, 'ref');
    await runTrain({
      config,
      flags: { outputDir: ref },
      stream: sink(),
      stdout: sink(),
      signal: testSignal().signal,
    });

    const runDir = join(dir, 'run');
    const { signal, target } = testSignal();
    const stream = sink((text) => {
      if (text.startsWith('[sft] step 2/3')) target.emit('SIGINT');
    });
    const stdout = sink();
    const stopped = await runTrain({ config, flags: { outputDir: runDir }, stream, stdout, signal });
    expect(stopped.status).toBe('stopped');
    expect(stopped.phases.sft).toMatchObject({
      status: 'stopped',
      steps: 2,
      lastCheckpoint: 'sft/checkpoint-2',
    });
    expect(stdout.text()).toContain(`Resume with: othink train --resume ${runDir}`);
    expect(stream.text()).toMatch(/sft: stopped at step 2 of 3; the last good checkpoint is .*checkpoint-2/);
    expect(readJsonl(join(runDir, 'metrics.jsonl')).records.map((m) => m.step)).toEqual([1, 2]);

    // Starting over in the same folder is refused; resuming works.
    await expect(
      runTrain({ config, flags: { outputDir: runDir }, stream: sink(), stdout: sink() }),
    ).rejects.toThrow(/already holds a run/);
    const resumedLog = sink();
    const resumed = await runTrain({
      resume: runDir,
      stream: resumedLog,
      stdout: sink(),
      signal: testSignal().signal,
    });
    expect(resumed.status).toBe('done');
    expect(resumedLog.text()).toContain('sft: resuming from');
    expect(resumedLog.text()).toContain('[sft] resuming at step 2 of 3');

    const a = readJsonl(join(ref, 'metrics.jsonl')).records;
    const b = readJsonl(join(runDir, 'metrics.jsonl')).records;
    expect(b.map((m) => `${m.phase}${m.step}`)).toEqual(['sft1', 'sft2', 'sft3', 'grpo1', 'grpo2']);
    // Same data order, RNG, weights and optimizer state: the same numbers.
    for (const [i, m] of b.entries()) {
      expect(m.loss, `${m.phase} ${m.step}`).toBeCloseTo(a[i].loss as number, 5);
      if (m.phase === 'grpo') expect(m.reward).toBe(a[i].reward);
    }
    // The evaluations are not repeated.
    const evals = JSON.parse(readFileSync(join(runDir, 'eval.json'), 'utf8')).evaluations;
    expect(evals.map((e: { stage: string }) => e.stage)).toEqual(['before', 'after sft', 'after grpo']);
  });

  it('a run that only diverges stops and keeps its last good checkpoint', async () => {
    const { dir, config } = setup();
    const runDir = join(dir, 'run');
    const stream = sink();
    const summary = await runTrain({
      config,
      flags: { outputDir: runDir },
      // An absurd learning rate makes the weights overflow after the first update (step 2: step 1
      // has learning rate 0, warm-up).
      set: ['grpo=null', 'sft.learningRate=1e30', 'sft.maxSteps=8', 'eval.beforeTraining=false'],
      stream,
      stdout: sink(),
      signal: testSignal().signal,
    });
    expect(summary.status).toBe('failed');
    expect(summary.phases.sft?.status).toBe('failed');
    expect(stream.text()).toMatch(/warning: sft: step \d+: loss is (NaN|Infinity)/);
    expect(stream.text()).toMatch(
      /the loss was not finite for several steps in a row; the last good checkpoint is .*sft\/checkpoint-2/,
    );
  });

  it('trains a Hugging Face model folder on a dataset folder, evaluates on a test split', async () => {
    const { dir, config } = setup();
    // A dataset in the R1-V layout (train.jsonl / test.jsonl + images/), as users bring their own.
    const data = join(dir, 'data');
    await writeTaskDataset(syntheticSamples('geometry', 6, 1).samples, data, {
      format: 'jsonl',
      split: 'train',
    });
    await writeTaskDataset(syntheticSamples('geometry', 3, 2).samples, data, {
      format: 'jsonl',
      split: 'test',
    });
    // A model folder with its tokenizer and image settings (what savePretrained + the processor files give).
    const base = resolveRunConfig(loadRunConfig({ file: config }).config, 1);
    const proc = await loadRunProcessor('tiny', base.model);
    const modelDir = join(dir, 'model');
    const model = loadInitialModel(base, proc.tokenizer);
    model.savePretrained(modelDir);
    model.dispose();
    saveRunProcessor(proc, modelDir);

    const runDir = join(dir, 'run');
    const summary = await runTrain({
      config,
      flags: { outputDir: runDir },
      set: [
        `model.path=${modelDir}`,
        `data.path=${data}`,
        'data.task=geometry',
        'data.trainSize=4',
        `eval.path=${data}`,
        'eval.tasks=[geometry]',
        'grpo=null',
        'sft.maxSteps=1',
      ],
      stream: sink(),
      stdout: sink(),
      signal: testSignal().signal,
    });
    expect(summary.status).toBe('done');
    const evalFile = JSON.parse(readFileSync(join(runDir, 'eval.json'), 'utf8'));
    expect(
      evalFile.evaluations.map(
        (e: { stage: string; task: string; n: number }) => `${e.stage}/${e.task}/${e.n}`,
      ),
    ).toEqual(['before/geometry/3', 'after sft/geometry/3']);
    expect(evalFile.evaluations[0].data).toContain('(test, 3 of 3 samples)');
    expect(evalFile.evaluations[0].records[0].prompt).toContain('As shown in the figure');
    const resolved = parse(readFileSync(join(runDir, 'config.resolved.yaml'), 'utf8'));
    expect(resolved.data).toMatchObject({ path: data, trainSize: 4 });
    // Asking for more training samples than the dataset has is an error that says so.
    await expect(
      runTrain({
        config,
        dryRun: true,
        set: [`data.path=${data}`, 'data.trainSize=50'],
        stdout: sink(),
        stream: sink(),
      }),
    ).rejects.toThrow(/data\.trainSize 50: .* has only 6 train samples; lower it or leave it out to use all/);
  });

  it('explains configs it cannot run', async () => {
    const { dir, config } = setup();
    await expect(
      runTrain({
        config,
        set: ['sft=null', 'grpo=null'],
        flags: { outputDir: join(dir, 'x') },
        stream: sink(),
      }),
    ).rejects.toThrow(/nothing to train: the config has neither an sft: nor a grpo: section/);
    const out = sink();
    const dry = await runTrain({ config, dryRun: true, stdout: out, stream: sink() });
    expect(dry.status).toBe('dry-run');
    expect(out.text()).toMatch(/^# Resolved config of this run/);
    expect(existsSync(dry.runDir)).toBe(false);
  });
});
