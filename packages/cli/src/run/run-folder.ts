// The run folder: everything a training run leaves behind.
//
//   config.resolved.yaml   the config with every default made explicit (re-runnable)
//   metrics.jsonl          one JSON line per optimizer step (both phases, `phase` field)
//   completions.jsonl      sampled GRPO completions with their rewards and advantages
//   eval.json              accuracy / format accuracy before training and after each phase
//   run-state.json         which phases are done, for --resume
//   processor/             tokenizer and preprocessor config of the model
//   plots/*.png            curves drawn from metrics.jsonl
//   <phase>/checkpoint-N/  checkpoints (written atomically by the trainer, last K kept)
//   <phase>/final/         the model at the end of the phase (HF folder with the processor files)
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { filterJsonl, JsonlWriter, readJsonl, writeFileAtomic } from './jsonl.js';

export type PhaseName = 'sft' | 'grpo';
export const PHASES: readonly PhaseName[] = ['sft', 'grpo'];

export interface PhaseState {
  status: 'running' | 'stopped' | 'done' | 'failed';
  /** Optimizer steps completed. */
  steps: number;
  maxSteps: number;
  /** Relative to the run folder. */
  lastCheckpoint?: string;
  final?: string;
  message?: string;
}

export interface RunState {
  phases: Partial<Record<PhaseName, PhaseState>>;
}

export interface EvalEntry {
  /** `before`, `after sft`, `after grpo`, or `checkpoint` for `othink eval`. */
  stage: string;
  task: string;
  accuracy: number;
  formatAccuracy: number;
  n: number;
  /** Where the test samples came from. */
  data: string;
  model?: string;
  time: string;
  records: { prompt: string; completion: string; accuracy: number; format: number }[];
}

export interface EvalFile {
  evaluations: EvalEntry[];
  /** accuracy[stage][task], the before / after (and cross-task) table. */
  accuracy: Record<string, Record<string, number>>;
  formatAccuracy: Record<string, Record<string, number>>;
}

export class RunFolder {
  readonly dir: string;
  readonly metrics: JsonlWriter;
  readonly completions: JsonlWriter;

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.metrics = new JsonlWriter(this.path('metrics.jsonl'));
    this.completions = new JsonlWriter(this.path('completions.jsonl'));
  }

  /**
   * Opens a run folder for a new run (creating it) or, with `resume`, an existing one. A folder that
   * already holds a run is refused without `resume`, so nothing is overwritten by accident.
   */
  static open(dir: string, options: { resume?: boolean } = {}): RunFolder {
    const run = new RunFolder(dir);
    if (options.resume) {
      if (!existsSync(run.path('config.resolved.yaml'))) {
        throw new Error(`${dir} is not a run folder (no config.resolved.yaml)`);
      }
    } else if (existsSync(run.path('metrics.jsonl')) || existsSync(run.path('run-state.json'))) {
      throw new Error(
        `${dir} already holds a run; resume it with --resume ${dir}, or pick another --output-dir`,
      );
    }
    mkdirSync(run.dir, { recursive: true });
    return run;
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  get plotsDir(): string {
    return this.path('plots');
  }

  get processorDir(): string {
    return this.path('processor');
  }

  phaseDir(phase: PhaseName): string {
    return this.path(phase);
  }

  finalDir(phase: PhaseName): string {
    return this.path(phase, 'final');
  }

  writeConfig(yaml: string): void {
    writeFileAtomic(this.path('config.resolved.yaml'), yaml);
  }

  readState(): RunState {
    const file = this.path('run-state.json');
    if (!existsSync(file)) return { phases: {} };
    return JSON.parse(readFileSync(file, 'utf8')) as RunState;
  }

  updatePhase(phase: PhaseName, patch: Partial<PhaseState>): RunState {
    const state = this.readState();
    const prev = state.phases[phase] ?? { status: 'running', steps: 0, maxSteps: 0 };
    state.phases[phase] = { ...prev, ...patch };
    writeFileAtomic(this.path('run-state.json'), `${JSON.stringify(state, null, 2)}\n`);
    return state;
  }

  readEval(): EvalFile {
    const file = this.path('eval.json');
    if (!existsSync(file)) return { evaluations: [], accuracy: {}, formatAccuracy: {} };
    return JSON.parse(readFileSync(file, 'utf8')) as EvalFile;
  }

  /** Adds an evaluation to eval.json (rewritten atomically). */
  addEval(entry: EvalEntry): EvalFile {
    const file = this.readEval();
    file.evaluations.push(entry);
    file.accuracy[entry.stage] = { ...file.accuracy[entry.stage], [entry.task]: entry.accuracy };
    file.formatAccuracy[entry.stage] = {
      ...file.formatAccuracy[entry.stage],
      [entry.task]: entry.formatAccuracy,
    };
    writeFileAtomic(this.path('eval.json'), `${JSON.stringify(file, null, 2)}\n`);
    return file;
  }

  /**
   * Before resuming `phase` from its checkpoint at `step`: drops the metrics and completions that
   * the interrupted run logged after that checkpoint (the resumed run logs those steps again).
   */
  rewindTo(phase: PhaseName, step: number): number {
    const after = (r: { phase?: string; step?: number }) => r.phase === phase && (r.step ?? 0) > step;
    const dropped = filterJsonl<{ phase?: string; step?: number }>(this.metrics.path, (r) => !after(r));
    filterJsonl<{ phase?: string; step?: number }>(this.completions.path, (r) => !after(r));
    return dropped;
  }

  /** Metric records, skipping a torn last line. */
  readMetrics(): Record<string, unknown>[] {
    return readJsonl(this.metrics.path).records;
  }

  close(): void {
    this.metrics.close();
    this.completions.close();
  }
}

/** `checkpoint-<step>` folders of a phase folder, newest last (temporary folders ignored). */
export function listCheckpoints(phaseDir: string): { dir: string; step: number }[] {
  if (!existsSync(phaseDir)) return [];
  return readdirSync(phaseDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ dir: join(phaseDir, m[0]), step: Number(m[1]) }))
    .filter((c) => statSync(c.dir).isDirectory() && existsSync(join(c.dir, 'config.json')))
    .sort((a, b) => a.step - b.step);
}

/** What `--resume <path>` points at: a run folder, or one checkpoint inside it. */
export function locateResume(path: string): { runDir: string; phase?: PhaseName; checkpoint?: string } {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`--resume ${path}: no such folder`);
  const m = /^checkpoint-(\d+)$/.exec(basename(abs));
  if (m) {
    const phase = basename(dirname(abs));
    if (!PHASES.includes(phase as PhaseName)) {
      throw new Error(`--resume ${path}: a checkpoint must be inside a run's sft/ or grpo/ folder`);
    }
    return { runDir: dirname(dirname(abs)), phase: phase as PhaseName, checkpoint: abs };
  }
  if (!existsSync(join(abs, 'config.resolved.yaml'))) {
    throw new Error(`--resume ${path}: not a run folder (no config.resolved.yaml) nor a checkpoint-N folder`);
  }
  return { runDir: abs };
}
