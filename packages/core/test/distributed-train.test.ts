// Data-parallel training equals one process with the same global batch: 2 ranks on loopback (gloo)
// against this process alone, on the toy task of train-helpers.ts. SFT with b examples per device
// on 2 ranks against 2b on one; GRPO with the same config (promptsPerStep is global). Completions
// are the same (per-completion seeds); losses, metrics and final weights agree up to float
// rounding; the ranks end bit-identical; rank 0 alone writes checkpoints, which record the world
// size, and a resume on another world size is refused.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectClose, maxAbsDiff } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type CompletionRecord,
  GRPOTrainer,
  type GrpoConfig,
  listCheckpoints,
  ProcessGroup,
  Qwen2VLForConditionalGeneration,
  type SftConfig,
  type StepMetrics,
  type TrainResult,
} from '../src/index.js';
import {
  data,
  evenIdReward,
  flatWeights,
  runToy,
  samples,
  type ToyRun,
  type ToyRunSpec,
  tinyModelDir,
  toyCommonConfig,
  toyGrpoConfig,
} from './train-helpers.js';

const rankScript = fileURLToPath(new URL('./distributed-train-rank.ts', import.meta.url));

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'othink-dp-'));
  dirs.push(d);
  return d;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface RankRun extends ToyRun {
  seconds: number;
}

/** Runs `spec` as 2 ranks on loopback; each rank's run (rank order), or throws with their errors. */
async function runTwoRanks(spec: ToyRunSpec): Promise<RankRun[]> {
  const port = await freePort();
  const out = tempDir();
  const ranks = [0, 1].map(async (rank) => {
    const child = spawn(process.execPath, ['--import', 'tsx', rankScript], {
      env: {
        ...process.env,
        // Two ranks share the CI's 2 cores.
        OMP_NUM_THREADS: '1',
        RANK: String(rank),
        WORLD_SIZE: '2',
        LOCAL_RANK: String(rank),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        OTHINK_TRAIN_SPEC: JSON.stringify(spec),
        OTHINK_TRAIN_WEIGHTS: join(out, 'weights'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const line = (tag: string) =>
      stdout
        .split('\n')
        .find((l) => l.startsWith(`${tag} `))
        ?.slice(tag.length + 1);
    const error = line('ERROR');
    if (error !== undefined) return { error: JSON.parse(error) as string };
    const result = line('RESULT');
    if (result === undefined)
      return { error: `rank ${rank} exited with ${code} and no result; stderr:\n${stderr}` };
    const r = JSON.parse(result) as {
      result: TrainResult;
      steps: StepMetrics[];
      completions: CompletionRecord[];
      seconds: number;
    };
    const bytes = readFileSync(join(out, `weights.${rank}`));
    return { run: { ...r, weights: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) } };
  });
  const done = await Promise.all(ranks);
  const errors = done.filter((d) => 'error' in d).map((d) => (d as { error: string }).error);
  if (errors.length > 0) throw new Error(errors.join('\n'));
  return done.map((d) => (d as { run: RankRun }).run);
}

const common = {
  ...toyCommonConfig,
  // Not torch's 1e-8: see the weight tolerance below.
  adamEpsilon: 1e-3,
};

/**
 * Tolerances. The 2-rank run computes the same sums in another order (each rank's micro-batch is
 * padded to its own longest row, so the matmuls have other shapes; the gradient mean adds two
 * halves): float32 rounding, ~1e-7 relative per operation, over a few layers and steps.
 * - Losses and logged metrics (grad_norm included, which catches a wrong scale of the gradient):
 *   1e-5 relative.
 * - Weights: with a tiny epsilon Adam's first step is lr * sign(g), so an element whose gradient is
 *   rounding noise (a key bias: zero in exact arithmetic, since softmax ignores a shift of a score
 *   row; or the cancellation of many terms) moves by +-lr on one run and -+lr on the other, whatever
 *   the data parallelism does (one process with another batching too: measured up to 5e-5 on an
 *   up_proj element with a permuted-vocabulary fixture set). With epsilon 1e-3 the update
 *   lr * m / (sqrt(v) + eps) changes by at most about lr * |dg| / eps for a gradient change dg, and
 *   dg, float32 rounding of sums of terms <= ~1e-2, is ~1e-9: 3e-9 per step, below the rounding of
 *   the weights themselves (measured: 1.2e-7 at most, an ulp of a weight near 1, on the public and
 *   on a permuted-vocabulary fixture set). The bound 1e-6 keeps 8x of margin, while a wrong share
 *   of the data or a missing average changes gradients by their own size (~1e-3) and weights by
 *   ~lr per step; the test checks the weights did move by far more than the bound (3.7e-3 here).
 */
const LOSS_TOL = { rtol: 1e-5, atol: 1e-6 };
const WEIGHT_TOL = { rtol: 0, atol: 1e-6 };

/** The tiny model's weights before training (read once). */
let initialWeights: Float32Array | undefined;
function runToyInitialWeights(): Float32Array {
  if (!initialWeights) {
    const model = Qwen2VLForConditionalGeneration.fromPretrained(tinyModelDir);
    initialWeights = flatWeights(model);
    model.dispose();
  }
  return initialWeights;
}

function compareRuns(one: ToyRun, two: RankRun[], names: string[]): void {
  // Every rank ends with the same weights, bit for bit (the same averaged gradient everywhere).
  expect(Buffer.from(two[1].weights.buffer).equals(Buffer.from(two[0].weights.buffer))).toBe(true);
  // Every rank logs the same (global) metrics.
  // Every rank logs the same (global) metrics; timings and memory are each rank's own measurements.
  const logged = (m: StepMetrics) => {
    const { tokens_per_second: _t, 'perf/max_memory_allocated_gb': _m, ...rest } = m;
    return rest;
  };
  expect(two[1].steps.map(logged)).toEqual(two[0].steps.map(logged));
  expect(two[0].steps.map((m) => m.step)).toEqual(one.steps.map((m) => m.step));
  for (const name of names) {
    expectClose(
      Float64Array.from(two[0].steps, (m) => m[name] as number),
      Float64Array.from(one.steps, (m) => m[name] as number),
      LOSS_TOL,
      name,
    );
  }
  const moved = maxAbsDiff(one.weights, runToyInitialWeights()).diff;
  expect(moved).toBeGreaterThan(100 * WEIGHT_TOL.atol);
  expectClose(two[0].weights, one.weights, WEIGHT_TOL, 'final weights');
}

describe('data-parallel training: 2 ranks equal 1 process with the same global batch', () => {
  it('SFT: 2 ranks x 2 examples per device = 1 process x 4, with checkpoints from rank 0 only', async () => {
    const config = (perDevice: number): SftConfig => ({
      ...common,
      maxSteps: 3,
      gradientAccumulationSteps: 2,
      perDeviceTrainBatchSize: perDevice,
      maxLength: 64,
    });
    const one = await runToy({ kind: 'sft', config: config(4) });
    const dir = tempDir();
    const two = await runTwoRanks({
      kind: 'sft',
      config: config(2),
      checkpoint: { dir, saveSteps: 2, saveTotalLimit: 0 },
    });
    compareRuns(one, two, ['loss', 'grad_norm']);
    expect(two[0].steps[2].loss).toBeLessThan(two[0].steps[0].loss);
    // Rank 0 wrote checkpoint-2 and the final one; nobody left temporary folders.
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2, 3]);
    expect(two.map((r) => r.result.lastCheckpoint)).toEqual([
      join(dir, 'checkpoint-3'),
      join(dir, 'checkpoint-3'),
    ]);
    const state = JSON.parse(readFileSync(join(dir, 'checkpoint-2', 'trainer_state.json'), 'utf8'));
    expect(state.worldSize).toBe(2);

    // A resume on another world size is refused in one line naming both sizes.
    await expect(
      runToy({
        kind: 'sft',
        config: config(4),
        checkpoint: {
          dir: tempDir(),
          saveSteps: 0,
          saveTotalLimit: 0,
          resumeFrom: join(dir, 'checkpoint-2'),
        },
      }),
    ).rejects.toThrow(
      /checkpoint-2: written by a run of 2 process\(es\); resuming it on 1 is not supported: resume with the same world size/,
    );
  }, 120_000);

  const grpo: GrpoConfig = { ...toyGrpoConfig, ...common, learningRate: 1e-3, perDeviceTrainBatchSize: 2 };
  const grpoMetrics = [
    'loss',
    'grad_norm',
    'reward',
    'reward_std',
    'kl',
    'beta',
    'clip_ratio',
    'completion_length',
  ];

  for (const variant of [
    { lossType: 'grpo', scaleRewards: 'group' },
    { lossType: 'dapo', scaleRewards: 'batch' },
  ] as const) {
    it(`GRPO (${variant.lossType}, scaleRewards ${variant.scaleRewards}): the same completions, losses and weights on 1 and 2 ranks`, async () => {
      const config = { ...grpo, ...variant };
      const one = await runToy({ kind: 'grpo', config });
      const two = await runTwoRanks({ kind: 'grpo', config });
      // Per-completion seeds: the same texts and rewards, and (whole groups on a rank, the batch
      // std global) the same advantages; rank 0 reports all of a step's completions.
      expect(two[0].completions.map((r) => [r.step, r.prompt, r.completion, r.reward])).toEqual(
        one.completions.map((r) => [r.step, r.prompt, r.completion, r.reward]),
      );
      expectClose(
        Float64Array.from(two[0].completions, (r) => r.advantage),
        Float64Array.from(one.completions, (r) => r.advantage),
        LOSS_TOL,
        'advantages',
      );
      expect(two[1].completions).toEqual([]);
      // Not every completion the same: the comparison is of something.
      expect(new Set(one.completions.map((r) => r.completion)).size).toBeGreaterThan(1);
      compareRuns(one, two, grpoMetrics);
    }, 120_000);
  }

  it('GRPO: promptsPerStep must divide among the ranks', () => {
    // A group object of world size 2 (no communicator: the constructor only reads the size).
    const group = new ProcessGroup(0, 2, 0, 'local', 0, {
      rank: 0,
      worldSize: 2,
      localRank: 0,
      masterAddr: '127.0.0.1',
      masterPort: 0,
      source: 'torchrun',
    });
    const model = Qwen2VLForConditionalGeneration.fromPretrained(tinyModelDir);
    const trainer = (config: Partial<GrpoConfig>) => () =>
      new GRPOTrainer({
        model,
        data,
        train: samples,
        group,
        rewards: evenIdReward,
        config: { ...grpo, ...config },
      });
    try {
      expect(trainer({ promptsPerStep: 3 })).toThrow(
        /promptsPerStep 3 must be a multiple of the world size 2/,
      );
      expect(trainer({ perDeviceTrainBatchSize: 8 })).toThrow(
        /perDeviceTrainBatchSize 8 must divide the 4 completions of a step on each rank \(promptsPerStep 2 \/ world size 2 x numGenerations 4\)/,
      );
    } finally {
      model.dispose();
    }
  });
});
