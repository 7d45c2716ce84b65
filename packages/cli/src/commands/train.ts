// `othink train [config] [--preset name]`: the whole run. Loads and resolves the config, prepares
// the data, evaluates before training, runs SFT and / or GRPO(-D) with metrics, completions,
// checkpoints and plots in the run folder, evaluates after each phase, and resumes a stopped run.
import {
  type CompletionRecord,
  GRPOTrainer,
  type Qwen2VLForConditionalGeneration,
  SFTTrainer,
  type StepMetrics,
  type TrainerCallbacks,
  type TrainResult,
} from '@othink/core';
import type { R1VSample } from '@othink/data';
import { checkDevice } from '../config/checks.js';
import { ConfigError } from '../config/errors.js';
import { type ConfigFlags, loadRunConfig } from '../config/load.js';
import { configToYaml, evalSettings, type ResolvedRunConfig, resolveRunConfig } from '../config/resolve.js';
import type { RunConfig, TaskName } from '../config/schema.js';
import { plotRun } from '../plot.js';
import { StopSignal } from '../run/interrupt.js';
import { Progress, type ProgressMode } from '../run/progress.js';
import {
  type EvalEntry,
  listCheckpoints,
  locateResume,
  type PhaseName,
  type PhaseState,
  RunFolder,
} from '../run/run-folder.js';
import { loadTestSamples, loadTrainSamples } from '../task/datasets.js';
import { EncodedTaskData } from '../task/encode.js';
import { evaluateTask } from '../task/evaluate.js';
import { loadRunProcessor, type RunProcessor, saveRunProcessor } from '../task/processor.js';
import { trainingReward } from '../task/rewards.js';
import { describeModel, loadInitialModel, loadModelFolder, toGrpoConfig, toSftConfig } from './model.js';

export interface TrainOptions {
  /** Config file (YAML / JSON). */
  config?: string;
  preset?: string;
  set?: string[];
  flags?: ConfigFlags;
  /** A run folder or one of its checkpoint-N folders. */
  resume?: string;
  /** Print the resolved config and stop. */
  dryRun?: boolean;
  /** Overrides output.progress. */
  progress?: ProgressMode | 'auto';
  /** Progress and log lines (default stderr). */
  stream?: NodeJS.WritableStream;
  /** The summary and the dry-run config (default stdout). */
  stdout?: NodeJS.WritableStream;
  /** Ctrl-C handling (default: installed on the process). */
  signal?: StopSignal;
}

export interface TrainSummary {
  runDir: string;
  /** 'done', or why it stopped. */
  status: 'done' | 'stopped' | 'failed' | 'dry-run';
  phases: Partial<Record<PhaseName, PhaseState>>;
  /** accuracy[stage][task]. */
  accuracy: Record<string, Record<string, number>>;
  plots: string[];
}

interface Session {
  config: ResolvedRunConfig;
  run: RunFolder;
  proc: RunProcessor;
  train: EncodedTaskData;
  tests: Map<TaskName, { data: EncodedTaskData; description: string }>;
  progress: Progress;
  signal: StopSignal;
}

function phasesOf(c: { sft?: unknown; grpo?: unknown }): PhaseName[] {
  return (['sft', 'grpo'] as const).filter((p) => c[p] !== undefined);
}

/** Loads the config of a new run, or of the run being resumed (with the given overrides on top). */
function loadConfig(o: TrainOptions): {
  config: RunConfig;
  sources: string[];
  resume?: ReturnType<typeof locateResume>;
} {
  if (o.resume !== undefined) {
    if (o.config !== undefined || o.preset !== undefined) {
      throw new ConfigError(
        '--resume takes the config of the run it resumes; drop the config file / --preset (use --set to change settings)',
      );
    }
    const resume = locateResume(o.resume);
    const { config, sources } = loadRunConfig({
      file: `${resume.runDir}/config.resolved.yaml`,
      set: o.set,
      flags: { ...o.flags, outputDir: resume.runDir },
    });
    return { config, sources, resume };
  }
  return loadRunConfig({ file: o.config, preset: o.preset, set: o.set, flags: o.flags });
}

export async function runTrain(o: TrainOptions = {}): Promise<TrainSummary> {
  const stdout = o.stdout ?? process.stdout;
  const { config: raw, sources, resume } = loadConfig(o);
  checkDevice(raw.model.device);
  if (phasesOf(raw).length === 0) {
    throw new ConfigError('nothing to train: the config has neither an sft: nor a grpo: section');
  }
  const progress = new Progress({
    mode: o.progress ?? raw.output.progress,
    stream: o.stream,
    everySteps: raw.output.loggingSteps,
    everySeconds: raw.output.loggingSeconds,
  });
  const trainSamples = await loadTrainSamples(raw);
  const config = resolveRunConfig(raw, trainSamples.samples.length);
  if (o.dryRun) {
    stdout.write(configToYaml(config, sources));
    return { runDir: config.output.dir, status: 'dry-run', phases: {}, accuracy: {}, plots: [] };
  }

  const run = RunFolder.open(config.output.dir, { resume: resume !== undefined });
  const signal = o.signal ?? new StopSignal().install();
  try {
    run.writeConfig(configToYaml(config, sources));
    progress.log(`${resume ? 'resuming' : 'run folder'}: ${run.dir}`);
    const proc = await loadRunProcessor(config.model.path, config.model);
    saveRunProcessor(proc, run.processorDir);

    const started = Date.now();
    const train = await EncodedTaskData.create(proc.processor, proc.imageProcessor, trainSamples.samples, {
      prompt: config.data.prompt,
      sftPrompt: config.sft ? config.data.sftPrompt : undefined,
      maxPromptLength: config.data.maxPromptLength,
      maxLength: config.sft?.maxLength,
    });
    const len = train.lengths();
    progress.log(
      `training data: ${trainSamples.description}; prompts up to ${len.maxPrompt} tokens (${len.imageTokens} image tokens)` +
        `${config.sft ? `, SFT examples up to ${len.maxSft}` : ''} [${((Date.now() - started) / 1000).toFixed(1)} s]`,
    );
    const tests = new Map<TaskName, { data: EncodedTaskData; description: string }>();
    if (config.eval.beforeTraining || config.eval.afterEachPhase) {
      for (const task of config.eval.tasks) {
        const t = await loadTestSamples(config, task);
        const data = await EncodedTaskData.create(proc.processor, proc.imageProcessor, t.samples, {
          prompt: evalSettings(config, task).prompt,
          maxPromptLength: config.data.maxPromptLength,
        });
        tests.set(task, { data, description: t.description });
      }
    }

    const session: Session = { config, run, proc, train, tests, progress, signal };
    return await trainPhases(session, resume, stdout);
  } finally {
    if (!o.signal) signal.uninstall();
    progress.end();
    run.close();
  }
}

async function trainPhases(
  s: Session,
  resume: ReturnType<typeof locateResume> | undefined,
  stdout: NodeJS.WritableStream,
): Promise<TrainSummary> {
  const { config, run, progress } = s;
  const state = run.readState();
  let model: Qwen2VLForConditionalGeneration = loadInitialModel(config, s.proc.tokenizer);
  progress.log(`model: ${describeModel(model, config.model.path)}`);
  const plots: string[] = [];
  const summary = (status: TrainSummary['status']): TrainSummary => ({
    runDir: run.dir,
    status,
    phases: run.readState().phases,
    accuracy: run.readEval().accuracy,
    plots,
  });
  const done = new Set(run.readEval().evaluations.map((e) => `${e.stage}/${e.task}`));
  const evalStage = async (stage: string) => {
    for (const [task, test] of s.tests) {
      if (done.has(`${stage}/${task}`)) continue;
      await runEval(s, model, stage, task, test.data, test.description);
    }
  };

  try {
    if (config.eval.beforeTraining) await evalStage('before');
    for (const phase of phasesOf(config)) {
      const prior = state.phases[phase];
      if (prior?.status === 'done' && prior.final) {
        progress.log(`${phase}: already done (${prior.steps} steps); continuing from ${prior.final}`);
        model.dispose();
        model = loadModelFolder(run.path(prior.final), s.proc.tokenizer, config.model.device);
        if (config.eval.afterEachPhase) await evalStage(`after ${phase}`);
        continue;
      }
      let resumeFrom: string | undefined;
      if (resume?.checkpoint && resume.phase === phase) resumeFrom = resume.checkpoint;
      else if (resume && prior) resumeFrom = listCheckpoints(run.phaseDir(phase)).at(-1)?.dir;
      let startStep = 0;
      if (resumeFrom) {
        startStep = Number(/checkpoint-(\d+)$/.exec(resumeFrom)?.[1] ?? 0);
        const dropped = run.rewindTo(phase, startStep);
        progress.log(
          `${phase}: resuming from ${resumeFrom}${dropped > 0 ? ` (dropping ${dropped} logged steps after it)` : ''}`,
        );
      } else if (prior) {
        // Interrupted before its first checkpoint: the phase starts over.
        run.rewindTo(phase, 0);
      }
      const result = await trainPhase(s, phase, model, resumeFrom, startStep);
      const rel = (p: string | undefined) => (p ? p.slice(run.dir.length + 1) : undefined);
      const steps = result.steps;
      const maxSteps = (config[phase] as { maxSteps: number }).maxSteps;
      if (config.output.plots) plots.splice(0, plots.length, ...safePlot(s));
      if (result.stoppedEarly) {
        const failed = result.reason === 'non-finite loss';
        run.updatePhase(phase, {
          status: failed ? 'failed' : 'stopped',
          steps,
          maxSteps,
          lastCheckpoint: rel(result.lastCheckpoint),
          message: result.reason,
        });
        const where = result.lastCheckpoint
          ? `the last good checkpoint is ${result.lastCheckpoint}`
          : 'no checkpoint was saved';
        if (failed) {
          progress.warn(
            `${phase}: stopped at step ${steps}: the loss was not finite for several steps in a row; ${where}`,
          );
        } else {
          progress.log(`${phase}: stopped at step ${steps} of ${maxSteps}; ${where}`);
        }
        stdout.write(`Resume with: othink train --resume ${run.dir}\n`);
        return summary(failed ? 'failed' : 'stopped');
      }
      const final = run.finalDir(phase);
      model.savePretrained(final);
      saveRunProcessor(s.proc, final);
      run.updatePhase(phase, {
        status: 'done',
        steps,
        maxSteps,
        lastCheckpoint: rel(result.lastCheckpoint),
        final: rel(final),
      });
      progress.log(`${phase}: done, ${steps} steps; model saved to ${final}`);
      if (config.eval.afterEachPhase) await evalStage(`after ${phase}`);
    }
    if (config.output.plots) plots.splice(0, plots.length, ...safePlot(s));
    const result = summary('done');
    stdout.write(formatSummary(result, config));
    return result;
  } finally {
    model.dispose();
  }
}

function safePlot(s: Session): string[] {
  try {
    return plotRun(s.run.dir);
  } catch (e) {
    s.progress.warn(`plots were not written: ${(e as Error).message}`);
    return [];
  }
}

async function trainPhase(
  s: Session,
  phase: PhaseName,
  model: Qwen2VLForConditionalGeneration,
  resumeFrom: string | undefined,
  startStep: number,
): Promise<TrainResult> {
  const { config, run, progress, signal } = s;
  const maxSteps = (config[phase] as { maxSteps: number }).maxSteps;
  run.updatePhase(phase, { status: 'running', steps: startStep, maxSteps });
  const t0 = Date.now();
  const callbacks: TrainerCallbacks = {
    onStep: async (m: StepMetrics) => {
      run.metrics.append({ ...m, phase, time: Number(((Date.now() - t0) / 1000).toFixed(3)) });
      progress.update(m);
      // A step runs synchronously and the trainer's awaits resolve as microtasks: yield to the event
      // loop once per step so that a Ctrl-C (a signal event) is seen before shouldStop() is asked.
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
    onCompletions: (records: CompletionRecord[]) => {
      for (const r of records.slice(0, config.output.completionsPerStep))
        run.completions.append({ phase, ...r });
    },
    shouldStop: () => signal.requested,
  };
  const checkpoint = {
    dir: run.phaseDir(phase),
    saveSteps: config.output.saveSteps,
    saveTotalLimit: config.output.saveTotalLimit,
    ...(resumeFrom ? { resumeFrom } : {}),
  };
  const warn = (m: string) => progress.warn(`${phase}: ${m}`);
  progress.start(phase, maxSteps, startStep);
  let trainer: SFTTrainer<R1VSample> | GRPOTrainer<R1VSample>;
  if (phase === 'sft') {
    trainer = new SFTTrainer<R1VSample>({
      model,
      data: s.train,
      train: s.train.samples,
      config: toSftConfig(config.sft!),
      callbacks,
      checkpoint,
      warn,
    });
  } else {
    trainer = new GRPOTrainer<R1VSample>({
      model,
      data: s.train,
      train: s.train.samples,
      rewards: trainingReward(config.grpo!.reward, { warn: (m) => progress.warn(`reward: ${m}`) }),
      config: toGrpoConfig(config.grpo!),
      callbacks,
      checkpoint,
      warn,
    });
  }
  try {
    return await trainer.train();
  } finally {
    trainer.dispose();
    progress.end();
  }
}

async function runEval(
  s: Session,
  model: Qwen2VLForConditionalGeneration,
  stage: string,
  task: TaskName,
  data: EncodedTaskData,
  description: string,
): Promise<EvalEntry> {
  const { config, run, progress } = s;
  const { entry, seconds } = await evaluateTask({
    model,
    data,
    task,
    config,
    progress,
    label: `eval ${task} (${stage})`,
    stage,
    description,
    keepRecords: config.eval.keepRecords,
  });
  run.addEval(entry);
  progress.log(
    `eval ${stage}, ${task}: accuracy ${pct(entry.accuracy)}, format ${pct(entry.formatAccuracy)} (n=${entry.n}, ${seconds.toFixed(1)} s)`,
  );
  return entry;
}

function pct(x: number | undefined): string {
  return x === undefined ? '-' : `${(100 * x).toFixed(1)}%`;
}

/** The before / after table (rows: stages, columns: tasks) and where things are. */
export function formatSummary(s: TrainSummary, c: ResolvedRunConfig): string {
  const lines: string[] = ['', `Run ${s.status}: ${s.runDir}`];
  const stages = Object.keys(s.accuracy);
  if (stages.length > 0) {
    const tasks = c.eval.tasks;
    const width = Math.max(...stages.map((x) => x.length), 'stage'.length);
    lines.push('', `${'accuracy'.padEnd(width)}  ${tasks.map((t) => t.padStart(9)).join('  ')}`);
    for (const stage of stages) {
      lines.push(
        `${stage.padEnd(width)}  ${tasks.map((t) => pct(s.accuracy[stage][t]).padStart(9)).join('  ')}`,
      );
    }
  }
  lines.push('');
  for (const [phase, st] of Object.entries(s.phases)) {
    lines.push(
      `${phase}: ${st.status}, ${st.steps}/${st.maxSteps} steps${st.final ? `, model in ${st.final}` : ''}`,
    );
  }
  lines.push(
    `metrics: metrics.jsonl, plots: ${s.plots.length > 0 ? 'plots/' : 'none'}, evaluations: eval.json`,
    '',
  );
  return lines.join('\n');
}
