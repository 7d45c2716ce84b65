// The optimisation loop shared by SFT and GRPO: AdamW with a learning-rate schedule and global
// gradient-norm clipping, metrics per step, checkpoints (atomic, resumable exactly), clean stop on
// request, and skipping of non-finite steps.
import type { Qwen2VLForConditionalGeneration } from '../model/qwen2vl.js';
import { Random } from '../model/sampling.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import type { Device } from '../tensor/dtype.js';
import { memoryStats, resetPeakMemory } from '../tensor/memory.js';
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
    return saveCheckpoint(ck, this.step, this.model, this.optimizer, {
      data: this.order.state(),
      rng: this.rand.state,
      ...this.extraState(),
    });
  }

  async train(): Promise<TrainResult> {
    const c = this.config;
    const ck = this.options.checkpoint;
    let lastCheckpoint: string | undefined;
    let savePending = false;
    if (ck?.resumeFrom) {
      const state = loadCheckpoint(ck.resumeFrom, this.model, this.optimizer);
      this.step = state.step as number;
      this.order.load(state.data as DataOrderState);
      this.rand.state = state.rng as number;
      this.loadExtraState(state);
      lastCheckpoint = ck.resumeFrom;
    }
    let badSteps = 0;
    const params = this.model.parameters();
    const device = params[0]?.device ?? 'cpu';
    while (this.step < c.maxSteps) {
      // Let the event loop run between steps (signal handlers: Ctrl-C asks shouldStop()).
      await new Promise((resolve) => setImmediate(resolve));
      resetPeakMemory(device);
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
      if (resumable && this.options.callbacks?.shouldStop?.()) {
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
