// `othink repro`: a miniature of the paper's Table 1 (same-task) and Fig. 7 (cross-task) on the
// synthetic tasks (paper-spec §4.3, §7). For every seed: a base model (an SFT warm-up on both tasks,
// the stand-in for Qwen2-VL-Instruct), then SFT, GRPO (constant beta) and GRPO-D (dynamic beta)
// post-training on each task from that base, each evaluated on both tasks with greedy decoding.
// Writes repro.json and repro.md (means with spread over seeds, next to the paper's numbers).
// Runs that finished are reused, so an interrupted repro continues where it stopped.
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { TASKS, type TaskName } from '../config/schema.js';
import { StopSignal } from '../run/interrupt.js';
import { writeFileAtomic } from '../run/jsonl.js';
import type { EvalEntry } from '../run/run-folder.js';
import { runTrain } from './train.js';

export const REPRO_METHODS = ['sft', 'grpo', 'grpo-d'] as const;
export type ReproMethod = (typeof REPRO_METHODS)[number];

export interface ReproOptions {
  /** Seeds (one base model and one run of every arm each). Default 1, 2, 3. */
  seeds?: number[];
  /** Output folder (default runs/repro). */
  out?: string;
  /** Training tasks of the arms (default both). */
  tasks?: TaskName[];
  /** Extra `--set` overrides for every run (e.g. `eval.testSize=200`). */
  set?: string[];
  /** maxSteps of every phase (a quick look; default: the presets'). */
  maxSteps?: number;
  /** Progress lines (default stderr). */
  stream?: NodeJS.WritableStream;
}

/** KL weights by task: constant beta (§7.3: 0.01 is best on GR; R1-V's 0.04 on counting), GRPO-D ranges (§2). */
const BETA: Record<TaskName, { constant: number; min: number; max: number }> = {
  counting: { constant: 0.04, min: 0.04, max: 0.1 },
  geometry: { constant: 0.01, min: 0.0, max: 0.02 },
};

/** One evaluation: accuracy and format accuracy on a task's test set. */
export interface ReproScore {
  accuracy: number;
  formatAccuracy: number;
}

export interface ReproRun {
  seed: number;
  /** 'base', or the method. */
  method: 'base' | ReproMethod;
  /** Training task of the arm ('mixed' for the base). */
  trainTask: TaskName | 'mixed';
  dir: string;
  /** Final scores per test task. */
  scores: Partial<Record<TaskName, ReproScore>>;
}

/** The paper's 2B numbers (paper-spec §7.1, §7.2 derived absolute values), accuracy %. */
export const PAPER_2B = {
  base: { counting: 42.5, geometry: 15.52, uToR: 15.52, rToU: 42.5 },
  sft: { counting: 68.5, geometry: 32.49, uToR: 3.45, rToU: 43.0 },
  grpo: { counting: 64.5, geometry: 30.24, uToR: undefined, rToU: undefined },
  'grpo-d': { counting: 76.5, geometry: 34.35, uToR: 16.18, rToU: 69.5 },
} as const;

function finalScores(dir: string): Partial<Record<TaskName, ReproScore>> {
  const file = join(dir, 'eval.json');
  const entries = (JSON.parse(readFileSync(file, 'utf8')) as { evaluations: EvalEntry[] }).evaluations;
  const scores: Partial<Record<TaskName, ReproScore>> = {};
  // The last evaluation of each task is the one after the final phase.
  for (const e of entries)
    scores[e.task as TaskName] = { accuracy: e.accuracy, formatAccuracy: e.formatAccuracy };
  return scores;
}

function isDone(dir: string): boolean {
  const state = join(dir, 'run-state.json');
  if (!existsSync(state) || !existsSync(join(dir, 'eval.json'))) return false;
  const phases = (JSON.parse(readFileSync(state, 'utf8')) as { phases: Record<string, { status: string }> })
    .phases;
  return Object.values(phases).length > 0 && Object.values(phases).every((p) => p.status === 'done');
}

/** Mean and sample standard deviation (0 for one value). */
export function meanStd(xs: number[]): { mean: number; std: number; n: number } {
  const n = xs.length;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

function cell(xs: number[]): string {
  if (xs.length === 0) return 'n/a';
  const { mean, std, n } = meanStd(xs.map((x) => x * 100));
  return n > 1 ? `${mean.toFixed(1)} ± ${std.toFixed(1)}` : mean.toFixed(1);
}

function paperCell(x: number | undefined): string {
  return x === undefined ? 'not reported' : x.toFixed(2);
}

const NAMES = {
  base: 'base (mixed SFT warm-up)',
  sft: '+ SFT',
  grpo: '+ GRPO (constant β)',
  'grpo-d': '+ GRPO-D',
} as const;

const HEADER = [
  '| method | VC same-task | GR same-task | U→R (VC→GR) | R→U (GR→VC) |',
  '| --- | --- | --- | --- | --- |',
];

/** [training task, test task] of the columns VC same-task, GR same-task, U→R, R→U. */
function columnsOf(method: ReproRun['method']): [TaskName | 'mixed', TaskName][] {
  // The base saw both tasks: its "same-task" and "cross-task" cells are its own scores.
  if (method === 'base') {
    return [
      ['mixed', 'counting'],
      ['mixed', 'geometry'],
      ['mixed', 'geometry'],
      ['mixed', 'counting'],
    ];
  }
  return [
    ['counting', 'counting'],
    ['geometry', 'geometry'],
    ['counting', 'geometry'],
    ['geometry', 'counting'],
  ];
}

/** The markdown report: same-task and cross-task accuracy (%) per method, mean ± std over seeds. */
export function reproMarkdown(runs: ReproRun[], seeds: number[]): string {
  const table = (metric: keyof ReproScore) =>
    (['base', ...REPRO_METHODS] as const).map((method) => {
      const cells = columnsOf(method).map(([train, test]) =>
        cell(
          runs
            .filter((r) => r.method === method && r.trainTask === train)
            .map((r) => r.scores[test]?.[metric])
            .filter((x): x is number => x !== undefined),
        ),
      );
      return `| ${NAMES[method]} | ${cells.join(' | ')} |`;
    });
  const lines = [
    '# Miniature of OThink-MR1 Table 1 and Fig. 7 (synthetic tasks, tiny Qwen2-VL, CPU)',
    '',
    `Seeds: ${seeds.join(', ')}. Accuracy % with greedy decoding, mean ± sample std over seeds. VC = synthetic`,
    'counting, GR = synthetic geometry. Same-task: trained and tested on one task; U→R: trained on counting,',
    'tested on geometry; R→U: trained on geometry, tested on counting. Every arm starts from the base of its',
    'seed. The base row is the base model itself (it saw both tasks).',
    '',
    ...HEADER,
    ...table('accuracy'),
    '',
    'Format accuracy % (R1-V strict format), same layout:',
    '',
    ...HEADER,
    ...table('formatAccuracy'),
    '',
    "The paper's numbers (Qwen2-VL-2B-Instruct on CLEVR → SuperCLEVR and GeoQA; cross-task values derived",
    'from the relative changes it states, paper-spec §7.2):',
    '',
    ...HEADER,
  ];
  for (const m of ['base', ...REPRO_METHODS] as const) {
    const p = PAPER_2B[m];
    lines.push(
      `| ${m === 'base' ? 'Qwen2-VL-2B-Instruct' : NAMES[m]} | ${paperCell(p.counting)} | ${paperCell(p.geometry)} | ${paperCell(p.uToR)} | ${paperCell(p.rToU)} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

/** Runs (or reuses) every run of the miniature and writes repro.json and repro.md; returns the markdown. */
export async function runRepro(o: ReproOptions = {}): Promise<string> {
  const seeds = o.seeds ?? [1, 2, 3];
  const tasks = o.tasks ?? [...TASKS];
  const out = resolve(o.out ?? join('runs', 'repro'));
  const stream = o.stream ?? process.stderr;
  mkdirSync(out, { recursive: true });
  const signal = new StopSignal().install();
  const runs: ReproRun[] = [];
  const total = seeds.length * (1 + tasks.length * REPRO_METHODS.length);
  let index = 0;
  const train = async (run: Omit<ReproRun, 'scores'>, preset: string, set: string[]) => {
    index++;
    const label = `[repro ${index}/${total}] seed ${run.seed} ${run.method} on ${run.trainTask}`;
    if (isDone(run.dir)) {
      stream.write(`${label}: done before, reusing ${run.dir}\n`);
    } else {
      stream.write(`${label}: training (log: ${run.dir}.log)\n`);
      const started = performance.now();
      mkdirSync(dirname(run.dir), { recursive: true });
      // A run stopped part-way (Ctrl-C saves a checkpoint) is resumed, not started over.
      const startedBefore = existsSync(join(run.dir, 'run-state.json'));
      const log = createWriteStream(`${run.dir}.log`, { flags: 'a' });
      try {
        const common = { progress: 'plain' as const, stream: log, stdout: log, signal };
        const summary = startedBefore
          ? await runTrain({ resume: run.dir, ...common })
          : await runTrain({
              preset,
              set: [...set, ...(o.set ?? [])],
              flags: { seed: run.seed, outputDir: run.dir, maxSteps: o.maxSteps },
              ...common,
            });
        if (summary.status !== 'done')
          throw new Error(`${label}: the run ${summary.status} (see ${run.dir}.log)`);
      } finally {
        await new Promise((r) => log.end(r));
      }
      stream.write(`${label}: done in ${((performance.now() - started) / 60_000).toFixed(1)} min\n`);
    }
    const done: ReproRun = { ...run, scores: finalScores(run.dir) };
    stream.write(
      `${label}: ${Object.entries(done.scores)
        .map(
          ([t, s]) =>
            `${t} ${(s.accuracy * 100).toFixed(1)}% (format ${(s.formatAccuracy * 100).toFixed(1)}%)`,
        )
        .join(', ')}\n`,
    );
    runs.push(done);
    writeFileAtomic(join(out, 'repro.json'), `${JSON.stringify({ seeds, tasks, runs }, null, 2)}\n`);
  };
  try {
    for (const seed of seeds) await trainSeed(seed);
  } finally {
    signal.uninstall();
  }
  const markdown = reproMarkdown(runs, seeds);
  writeFileAtomic(join(out, 'repro.md'), markdown);
  return markdown;

  async function trainSeed(seed: number): Promise<void> {
    const base = join(out, `seed-${seed}`, 'base');
    await train({ seed, method: 'base', trainTask: 'mixed', dir: base }, 'repro-base', []);
    for (const task of tasks) {
      const b = BETA[task];
      for (const method of REPRO_METHODS) {
        const beta =
          method === 'grpo'
            ? [`grpo.beta.beta=${b.constant}`]
            : method === 'grpo-d'
              ? [`grpo.beta.betaMin=${b.min}`, `grpo.beta.betaMax=${b.max}`]
              : [];
        await train(
          { seed, method, trainTask: task, dir: join(out, `seed-${seed}`, `${method}-${task}`) },
          `repro-${method}`,
          [`model.path=${join(base, 'sft', 'final')}`, `data.task=${task}`, ...beta],
        );
      }
    }
  }
}
