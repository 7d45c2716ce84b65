#!/usr/bin/env node
// The `othink` command: train (SFT, GRPO, GRPO-D), eval, generate, plot, presets.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { runEvalCommand } from './commands/eval.js';
import { runGenerate } from './commands/generate.js';
import { runRepro } from './commands/repro.js';
import { runTrain } from './commands/train.js';
import { ConfigError } from './config/errors.js';
import { listPresets, presetsDir } from './config/load.js';
import { PROMPT_PRESET_NAMES, type PromptSpec, TASKS, type TaskName } from './config/schema.js';
import { plotRun } from './plot.js';
import { runDistSelftest } from './run/dist-selftest.js';
import { launch, stripLauncherFlags } from './run/launch.js';

function int(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

function float(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number >= 0`);
    return n;
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function seeds(value: string): number[] {
  const list = value.split(',').map((x) => x.trim());
  const parsed = list.map(Number);
  const bad = list.find((x, i) => x === '' || !Number.isInteger(parsed[i]) || parsed[i] < 0);
  if (bad !== undefined) throw new InvalidArgumentError(`--seeds: "${bad}" is not a non-negative integer`);
  return [...new Set(parsed)];
}

function tasks(value: string, previous: TaskName[] = []): TaskName[] {
  const out = [...previous];
  for (const t of value.split(',').map((x) => x.trim())) {
    if (!(TASKS as readonly string[]).includes(t)) {
      throw new InvalidArgumentError(`unknown task "${t}"; tasks: ${TASKS.join(', ')}`);
    }
    if (!out.includes(t as TaskName)) out.push(t as TaskName);
  }
  return out;
}

/** First comment line of a preset file: its one-line description. */
function presetDescription(name: string): string {
  const text = readFileSync(join(presetsDir(), `${name}.yaml`), 'utf8');
  const first = text.split('\n').find((l) => l.startsWith('#'));
  return first ? first.replace(/^#\s*/, '') : '';
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    return pkg.version;
  } catch {
    return '0.0.0';
  }
}

/** The launcher's flags (run/launch.ts), on the commands that can run as several processes. */
function launcherOptions(command: Command): Command {
  return command
    .option(
      '--nproc-per-node <n>',
      'data parallel: run n processes on this machine (one per GPU), as torchrun',
      int('--nproc-per-node', 1),
    )
    .option('--nnodes <n>', 'machines in the job (with --nproc-per-node; default 1)', int('--nnodes', 1))
    .option('--node-rank <r>', "this machine's index, 0..nnodes-1 (default 0)", int('--node-rank'))
    .option('--master-addr <addr>', 'address of node 0, where rank 0 serves the rendezvous store')
    .option(
      '--master-port <port>',
      "port of rank 0's store (default: a free one on one node, 29500 across nodes)",
      int('--master-port', 1),
    );
}

/**
 * With --nproc-per-node: runs this command as that many ranks (without the launcher's flags) and
 * sets the exit code; true when it did. The other launcher flags alone are refused.
 */
async function launchIfAsked(opts: Record<string, unknown>, argv: readonly string[]): Promise<boolean> {
  if (opts.nprocPerNode === undefined) {
    const stray = ['nnodes', 'nodeRank', 'masterAddr', 'masterPort'].find((k) => opts[k] !== undefined);
    if (stray) {
      const flag = `--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new InvalidArgumentError(`${flag} needs --nproc-per-node (the launcher's flags go together)`);
    }
    return false;
  }
  process.exitCode = await launch({
    nprocPerNode: opts.nprocPerNode as number,
    nnodes: opts.nnodes as number | undefined,
    nodeRank: opts.nodeRank as number | undefined,
    masterAddr: opts.masterAddr as string | undefined,
    masterPort: opts.masterPort as number | undefined,
    command: [argv[1], ...stripLauncherFlags(argv.slice(2))],
  });
  return true;
}

/** `argv`: the command line being parsed (node, script, args), which the launcher repeats per rank. */
export function buildProgram(argv: readonly string[] = process.argv): Command {
  const program = new Command('othink')
    .description('Post-train Qwen2-VL with SFT, GRPO and GRPO-D (OThink-MR1).')
    .version(version())
    .showHelpAfterError('(run with --help for usage)');

  const train = program
    .command('train')
    .description('train a model (SFT and / or GRPO / GRPO-D); no arguments: the default preset')
    .argument('[config]', 'YAML or JSON config file (may say `extends: <preset>`)')
    .option(
      '-p, --preset <name>',
      'start from a bundled preset (see `othink presets`); a config file goes on top',
    )
    .option(
      '-s, --set <key=value>',
      'override a setting, e.g. grpo.numGenerations=4 (repeatable)',
      collect,
      [],
    )
    .option('--max-steps <n>', 'maxSteps of every phase', int('--max-steps', 1))
    .option('--seed <n>', 'the run seed (model init, data, trainers)', int('--seed'))
    .option('-o, --output-dir <dir>', 'run folder (default runs/<name>-<date>-<time>)')
    .option('--resume <path>', 'resume a stopped run: its folder, or one of its checkpoint-N folders')
    .option('--dry-run', 'print the resolved config and exit')
    .addOption(new Option('--progress <mode>', 'progress display').choices(['auto', 'bars', 'plain', 'none']))
    .action(async (config: string | undefined, opts) => {
      if (await launchIfAsked(opts, argv)) return;
      // The trainers do not use a process group yet: each rank would run the whole training on its
      // own, all writing the same run folder. Refuse until they do (docs/distributed.md).
      const world = Number(process.env.WORLD_SIZE ?? process.env.OMPI_COMM_WORLD_SIZE ?? 1);
      if (world > 1) {
        throw new Error(
          `othink train does not train data-parallel yet (WORLD_SIZE=${world}): every rank would run the same training; run one process (the launcher and the collectives are ready: othink _dist-selftest)`,
        );
      }
      const summary = await runTrain({
        config,
        preset: opts.preset,
        set: opts.set,
        flags: { maxSteps: opts.maxSteps, seed: opts.seed, outputDir: opts.outputDir },
        resume: opts.resume,
        dryRun: opts.dryRun,
        progress: opts.progress,
      });
      // A run stopped by Ctrl-C exits like an interrupted command (130), a failed one with 1.
      process.exitCode = summary.status === 'stopped' ? 130 : summary.status === 'failed' ? 1 : 0;
    });
  launcherOptions(train);

  // Each rank of a launched job checks the communicator (the launcher's tests, a cluster's setup).
  launcherOptions(
    program
      .command('_dist-selftest', { hidden: true })
      .description('check the launcher and the collectives without training')
      .option('--fail-rank <r>', 'this rank exits with code 3 before the all-reduce', int('--fail-rank'))
      .option('--sleep-ms <ms>', 'wait this long after the checks', int('--sleep-ms'))
      .option('--marker-dir <dir>', 'on SIGINT, each rank appends a line to <dir>/rank-<r>.txt'),
  ).action(async (opts) => {
    if (await launchIfAsked(opts, argv)) return;
    await runDistSelftest({ failRank: opts.failRank, sleepMs: opts.sleepMs, markerDir: opts.markerDir });
  });

  program
    .command('eval')
    .description('accuracy and format accuracy of a model on test sets (greedy decoding)')
    .argument('<checkpoint>', "a model folder (a run's <phase>/final or <phase>/checkpoint-N), or `tiny`")
    .option('-t, --task <tasks>', `task(s) to test: ${TASKS.join(', ')} (comma-separated or repeated)`, tasks)
    .option('--test-size <n>', 'test samples per task', int('--test-size', 1))
    .option('--seed <n>', 'seed of the synthetic test set', int('--seed'))
    .option('--batch-size <n>', 'prompts decoded at once', int('--batch-size', 1))
    .option('--max-new-tokens <n>', 'completion length', int('--max-new-tokens', 1))
    .addOption(new Option('--prompt <preset>', 'prompt preset').choices([...PROMPT_PRESET_NAMES]))
    .option('--data <path>', 'a test dataset (folder, .jsonl or .parquet) instead of synthetic data')
    .option('--split <name>', 'split of --data (default test)')
    .option('--output <file>', 'write the results with every completion to a JSON file')
    .option('--show <n>', 'print n completions per task', int('--show'))
    .addOption(new Option('--progress <mode>', 'progress display').choices(['auto', 'bars', 'plain', 'none']))
    .action(async (checkpoint: string, opts) => {
      await runEvalCommand({
        checkpoint,
        tasks: opts.task,
        testSize: opts.testSize,
        seed: opts.seed,
        batchSize: opts.batchSize,
        maxNewTokens: opts.maxNewTokens,
        prompt: opts.prompt as PromptSpec | undefined,
        data: opts.data,
        split: opts.split,
        output: opts.output,
        show: opts.show,
        progress: opts.progress,
      });
    });

  program
    .command('generate')
    .description('complete one prompt (with an optional image)')
    .argument('<checkpoint>', 'a model folder, or `tiny`')
    .requiredOption('--prompt <text>', 'the user message (or the {Question} of --template)')
    .option('--image <path>', 'a PNG / JPEG / WebP image shown before the text')
    .addOption(
      new Option('--template <preset>', 'wrap the prompt in a preset').choices([...PROMPT_PRESET_NAMES]),
    )
    .option('--max-new-tokens <n>', 'completion length (default 256)', int('--max-new-tokens', 1))
    .option('--temperature <t>', 'sampling temperature; 0 (default) is greedy', float('--temperature'))
    .option('--top-k <k>', 'keep the k most likely tokens (0: off)', int('--top-k'))
    .option('--top-p <p>', 'nucleus sampling (1: off)', float('--top-p'))
    .option('--seed <n>', 'sampling seed', int('--seed'))
    .option('-n, --num <n>', 'completions to draw', int('--num', 1))
    .addOption(new Option('--device <device>', 'where the model runs').choices(['cpu', 'cuda']))
    .action(async (checkpoint: string, opts) => {
      await runGenerate({
        checkpoint,
        prompt: opts.prompt,
        image: opts.image,
        template: opts.template,
        maxNewTokens: opts.maxNewTokens,
        temperature: opts.temperature,
        topK: opts.topK,
        topP: opts.topP,
        seed: opts.seed,
        num: opts.num,
        device: opts.device,
      });
    });

  program
    .command('repro')
    .description(
      "miniature of the paper's tables: a base warm-up, then SFT, GRPO and GRPO-D on each task, several seeds, " +
        'same-task and cross-task accuracy next to the paper (tens of minutes on CPU)',
    )
    .option('--seeds <list>', 'comma-separated seeds', (v: string) => seeds(v), [1, 2, 3])
    .option('-t, --task <tasks>', `training task(s) of the arms: ${TASKS.join(', ')}`, tasks)
    .option('-o, --out <dir>', 'output folder; finished runs in it are reused', 'runs/repro')
    .option('--max-steps <n>', "maxSteps of every phase (default: the presets')", int('--max-steps', 1))
    .option(
      '-s, --set <key=value>',
      'override a setting of every run, e.g. eval.testSize=200 (repeatable)',
      collect,
      [],
    )
    .action(async (opts) => {
      const markdown = await runRepro({
        seeds: opts.seeds,
        tasks: opts.task,
        out: opts.out,
        set: opts.set,
        maxSteps: opts.maxSteps,
      });
      process.stdout.write(`${markdown}\nwritten to ${join(opts.out, 'repro.md')} and repro.json\n`);
    });

  program
    .command('plot')
    .description("draw a run's curves (metrics.jsonl) and eval accuracies as PNG files")
    .argument('<run>', 'the run folder')
    .option('--out <dir>', 'where to write the PNGs (default <run>/plots)')
    .action((run: string, opts) => {
      const files = plotRun(run, { outDir: opts.out });
      for (const f of files) process.stdout.write(`${f}\n`);
    });

  program
    .command('presets')
    .description('list the bundled presets')
    .action(() => {
      for (const name of listPresets())
        process.stdout.write(`${name.padEnd(18)} ${presetDescription(name)}\n`);
      process.stdout.write(`\n(files in ${presetsDir()})\n`);
    });

  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram(argv).parseAsync(argv);
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`\nerror: ${err.message}\n`);
    if (process.env.OTHINK_DEBUG && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
  }
}

// A rank started by the launcher (run/launch.ts) stops when the launcher goes away (its IPC channel
// closes: killed, or its terminal gone) instead of running on alone.
if (process.env.OTHINK_LAUNCHED === '1' && process.channel) {
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

await main();
