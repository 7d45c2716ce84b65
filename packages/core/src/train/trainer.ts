// The optimisation loop shared by SFT and GRPO: AdamW with a learning-rate schedule and global
// gradient-norm clipping, metrics per step, checkpoints (atomic, resumable exactly), clean stop on
// request, and skipping of non-finite steps. Data-parallel with a process group (TRL / DDP
// semantics): the same initial weights on every rank, gradients averaged over the ranks before
// clipping, metrics reduced over the ranks, rank 0 alone writes checkpoints.
import { join } from 'node:path';
import { allReduceGradients, broadcastParameters, reduceMetrics } from '../distributed/gradients.js';
import { initDistributed, type ProcessGroup } from '../distributed/group.js';
import type { Qwen2VLForConditionalGeneration } from '../model/qwen2vl.js';
import { Random } from '../model/sampling.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import type { Device } from '../tensor/dtype.js';
import { memoryStats, resetPeakMemory } from '../tensor/memory.js';
import type { Tensor } from '../tensor/tensor.js';
import { type CheckpointOptions, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { DataOrder, type DataOrderState } from './data-order.js';
import { learningRateAt } from './lr-schedule.js';
import type { CommonTrainConfig, StepValues, TrainDataAdapter, TrainerCallbacks } from './types.js';

export interface TrainResult {
  steps: number;
  stoppedEarly: boolean;
  /** Why the run stopped before maxSteps. */
  reason?: 'requested' | 'non-finite loss';
  lastCheckpoint?: string;
}

/** Consecutive non-finite steps after which a run stops (keeping its last good checkpoint). */
const MAX_BAD_STEPS = 3;

export interface TrainerOptions<S, C extends CommonTrainConfig> {
  model: Qwen2VLForConditionalGeneration;
  data: TrainDataAdapter<S>;
  train: S[];
  config: C;
  callbacks?: TrainerCallbacks;
  checkpoint?: CheckpointOptions;
  /** Where warnings go (default console.warn). */
  warn?: (message: string) => void;
  /**
   * The data-parallel job this trainer is one rank of (initDistributed()). Default: one process
   * (a local group: no collective library). Every rank runs the same trainer with the same config
   * and training set; see docs/distributed.md for what is global and what per device.
   */
  group?: ProcessGroup;
}

/**
 * The step's peak tensor memory on the model's device (from the reset before computeStep through
 * the optimizer update), and on CUDA what the caching allocator holds from the driver. Names as
 * verl logs them.
 */
function stepMemory(device: Device): Record<string, number> {
  const m = memoryStats(device);
  const gb = (bytes: number) => bytes / 2 ** 30;
  return device === 'cuda'
    ? { 'perf/max_memory_allocated_gb': gb(m.peakBytes), 'perf/memory_reserved_gb': gb(m.reservedBytes) }
    : { 'perf/max_memory_allocated_gb': gb(m.peakBytes) };
}

export abstract class Trainer<S, C extends CommonTrainConfig> {
  readonly model: Qwen2VLForConditionalGeneration;
  readonly config: C;
  protected readonly optimizer: AdamW;
  protected readonly order: DataOrder;
  /** The run's sampling generator (saved in checkpoints). */
  protected readonly rand: Random;
  protected step = 0;
  protected readonly group: ProcessGroup;
  private readonly warn: (m: string) => void;

  constructor(protected readonly options: TrainerOptions<S, C>) {
    this.model = options.model;
    this.config = options.config;
    const c = options.config;
    this.optimizer = new AdamW(this.model.parameters(), {
      lr: c.learningRate,
      betas: [c.adamBeta1, c.adamBeta2],
      eps: c.adamEpsilon,
      weightDecay: c.weightDecay,
    });
    this.order = new DataOrder(options.train.length, c.seed);
    this.rand = new Random(c.seed);
    this.warn = options.warn ?? ((m) => console.warn(m));
    // An empty environment always gives the local group: one process never loads a communicator.
    this.group = options.group ?? initDistributed({ env: {} });
  }

  /**
   * Tensors that must be equal on every rank besides the model's parameters (GRPO's reference
   * model), broadcast from rank 0 with them.
   */
  protected replicatedTensors(): Tensor[] {
    return [];
  }

  /**
   * The step's numbers over all ranks: the mean of each, except the names in `sums` (summed).
   * Every rank gets the same values, so all log (and decide on) the same numbers.
   */
  protected globalValues(values: StepValues, sums: readonly string[] = []): StepValues {
    if (this.group.worldSize === 1) return values;
    const numeric = Object.entries(values).filter((e): e is [string, number] => typeof e[1] === 'number');
    const reduce = (keep: (name: string) => boolean, op: 'mean' | 'sum') => {
      const part = Object.fromEntries(numeric.filter(([k]) => keep(k)));
      // The names are the same on every rank, so every rank makes (or skips) the same call.
      return Object.keys(part).length > 0 ? reduceMetrics(this.group, part, op) : {};
    };
    return {
      ...values,
      ...reduce((k) => !sums.includes(k), 'mean'),
      ...reduce((k) => sums.includes(k), 'sum'),
    };
  }

  /** Whether any rank asks to stop: every rank must leave the loop after the same step. */
  private anyRankStops(local: boolean): boolean {
    if (this.group.worldSize === 1) return local;
    return this.group.allReduce(Int32Array.of(local ? 1 : 0), 'max')[0] === 1;
  }

  /** Computes the gradients of one optimizer step into the parameters' .grad; returns its metrics. */
  protected abstract computeStep(step: number): Promise<StepValues>;

  /** Extra state for checkpoints. */
  protected extraState(): Record<string, unknown> {
    return {};
  }

  protected loadExtraState(_state: Record<string, unknown>): void {}

  /**
   * Whether a checkpoint taken after the current step resumes exactly. GRPO with numIterations > 1
   * keeps its rollout in memory between the updates that share it, so only the step that ends a
   * rollout is such a point.
   */
  protected atResumablePoint(): boolean {
    return true;
  }

  protected samples(indices: number[]): S[] {
    return indices.map((i) => this.options.train[i]);
  }

  private save(): string | undefined {
    const ck = this.options.checkpoint;
    if (!ck) return undefined;
    // Every rank holds the same weights, optimizer moments and state: rank 0 writes them, and the
    // others wait until it has, so nobody runs ahead of (or, on failure, past) a checkpoint.
    let path = join(ck.dir, `checkpoint-${this.step}`);
    if (this.group.isMain) {
      path = saveCheckpoint(ck, this.step, this.model, this.optimizer, {
        data: this.order.state(),
        rng: this.rand.state,
        worldSize: this.group.worldSize,
        ...this.extraState(),
      });
    }
    this.group.barrier();
    return path;
  }

  async train(): Promise<TrainResult> {
    const c = this.config;
    const ck = this.options.checkpoint;
    let lastCheckpoint: string | undefined;
    let savePending = false;
    if (ck?.resumeFrom) {
      const state = loadCheckpoint(ck.resumeFrom, this.model, this.optimizer);
      // Checkpoints from before data parallelism hold no worldSize: they are single-process runs.
      const saved = (state.worldSize as number | undefined) ?? 1;
      if (saved !== this.group.worldSize) {
        throw new Error(
          `${ck.resumeFrom}: written by a run of ${saved} process(es); resuming it on ${this.group.worldSize} is not supported: resume with the same world size (--nproc-per-node / WORLD_SIZE ${saved})`,
        );
      }
      this.step = state.step as number;
      this.order.load(state.data as DataOrderState);
      this.rand.state = state.rng as number;
      this.loadExtraState(state);
      lastCheckpoint = ck.resumeFrom;
    }
    let badSteps = 0;
    const params = this.model.parameters();
    const device = this.model.device;
    // The same weights everywhere (a resume loaded the same files on every rank; broadcasting
    // anyway makes that a guarantee rather than an assumption).
    if (this.group.worldSize > 1) broadcastParameters(this.group, [...params, ...this.replicatedTensors()]);
    while (this.step < c.maxSteps) {
      // Let the event loop run between steps (signal handlers: Ctrl-C asks shouldStop()).
      await new Promise((resolve) => setImmediate(resolve));
      resetPeakMemory(device);
      // The metrics are global (reduced over the ranks), so every rank takes the same branch below.
      const metrics = await this.computeStep(this.step);
      if (!Number.isFinite(metrics.loss)) {
        this.optimizer.zeroGrad();
        this.step += 1;
        badSteps += 1;
        this.warn(
          `step ${this.step}: loss is ${metrics.loss}; the update was skipped (${badSteps} in a row)`,
        );
        if (badSteps >= MAX_BAD_STEPS)
          return { steps: this.step, stoppedEarly: true, reason: 'non-finite loss', lastCheckpoint };
        continue;
      }
      badSteps = 0;
      // The mean of the ranks' gradients before clipping: the norm is the global gradient's.
      allReduceGradients(this.group, params);
      const norm = clipGradNorm(params, c.maxGradNorm);
      const lr = learningRateAt(this.step, c.maxSteps, c.learningRate, c.lrSchedulerType, c.warmupSteps);
      this.optimizer.update({ lr });
      this.optimizer.zeroGrad();
      this.step += 1;
      await this.options.callbacks?.onStep?.({
        ...metrics,
        step: this.step,
        learning_rate: lr,
        grad_norm: norm.totalNorm,
        ...stepMemory(device),
      });
      if (ck && ck.saveSteps > 0 && this.step % ck.saveSteps === 0) savePending = true;
      // A stop request or a due checkpoint waits for a step a checkpoint resumes exactly from
      // (at most numIterations - 1 more GRPO steps).
      const resumable = this.atResumablePoint();
      if (resumable && this.anyRankStops(this.options.callbacks?.shouldStop?.() ?? false)) {
        return {
          steps: this.step,
          stoppedEarly: true,
          reason: 'requested',
          lastCheckpoint: this.save() ?? lastCheckpoint,
        };
      }
      if (savePending && resumable) {
        lastCheckpoint = this.save();
        savePending = false;
      }
    }
    if (ck && !lastCheckpoint?.endsWith(`checkpoint-${this.step}`)) lastCheckpoint = this.save();
    return { steps: this.step, stoppedEarly: false, lastCheckpoint };
  }

  /** Frees the optimizer state. */
  dispose(): void {
    this.optimizer.dispose();
  }
}
