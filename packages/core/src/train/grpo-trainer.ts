// GRPO and GRPO-D (OThink-MR1): sample G completions per prompt, score them with the reward
// functions, group-normalise the rewards into advantages, and minimise the fused clipped loss with
// a KL penalty whose weight follows the configured schedule (paper Eq. 3-5; TRL GRPOTrainer).
// Data-parallel: promptsPerStep counts the prompts of a step over all ranks; each rank generates
// whole groups for its contiguous share of them, seeded per completion, so the completions and the
// update do not depend on the world size.
import { groupAdvantages } from '@othink/native';
import { allGatherJson } from '../distributed/gather.js';
import { type GenerationConfig, type GenerationOutput, generate } from '../model/generate.js';
import type { Qwen2VLForConditionalGeneration, Qwen2VLInputs } from '../model/qwen2vl.js';
import { completionSeed } from '../model/sampling.js';
import { isGradEnabled, noGrad } from '../tensor/autograd.js';
import { grpoLossOp } from '../tensor/ops/grpo-loss.js';
import { narrow } from '../tensor/ops/shape.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { modelInputs, selectRows } from './batch.js';
import { KlController, type KlControllerState } from './kl-controller.js';
import { Trainer, type TrainerOptions } from './trainer.js';
import type { CompletionRecord, GrpoConfig, PromptBatchLike, RewardScorer, StepValues } from './types.js';

/** One generation batch, reused for numIterations optimizer steps. */
interface Rollout {
  /** Prompt + completion rows (left-padded prompts, then the completion, its mask in attentionMask). */
  full: PromptBatchLike;
  promptLength: number;
  completionLength: number;
  completionIds: Int32Array;
  completionMask: Float32Array;
  advantages: Float32Array;
  oldLogprobs?: Float32Array;
  refLogprobs?: Float32Array;
  rewardMean: number;
  rewardStd: number;
  perFunction: Record<string, number>;
  meanLength: number;
}

export interface GrpoTrainerOptions<S> extends TrainerOptions<S, GrpoConfig> {
  rewards: RewardScorer<S>;
}

export class GRPOTrainer<S> extends Trainer<S, GrpoConfig> {
  private readonly kl: KlController;
  /** The frozen initial policy (skipped when beta is 0 for the whole run). */
  private readonly ref: Qwen2VLForConditionalGeneration | null;
  private rollout: Rollout | null = null;

  constructor(private readonly grpo: GrpoTrainerOptions<S>) {
    super(grpo);
    const c = grpo.config;
    const w = this.group.worldSize;
    if (c.promptsPerStep % w !== 0) {
      throw new RangeError(
        `promptsPerStep ${c.promptsPerStep} must be a multiple of the world size ${w} (it counts the prompts of a step over all ranks, each rank generating whole groups)`,
      );
    }
    const completions = this.localPrompts * c.numGenerations;
    if (completions % c.perDeviceTrainBatchSize !== 0) {
      throw new RangeError(
        w === 1
          ? `perDeviceTrainBatchSize ${c.perDeviceTrainBatchSize} must divide the ${completions} completions of a step (promptsPerStep ${c.promptsPerStep} x numGenerations ${c.numGenerations})`
          : `perDeviceTrainBatchSize ${c.perDeviceTrainBatchSize} must divide the ${completions} completions of a step on each rank (promptsPerStep ${c.promptsPerStep} / world size ${w} x numGenerations ${c.numGenerations})`,
      );
    }
    if (c.numGenerations < 2)
      throw new RangeError(
        `numGenerations must be >= 2 (the group std needs two samples), got ${c.numGenerations}`,
      );
    this.kl = new KlController(c.beta);
    this.ref = this.kl.isAlwaysZero() ? null : grpo.model.copy();
  }

  /** Prompts of a step on this rank. */
  private get localPrompts(): number {
    return this.config.promptsPerStep / this.group.worldSize;
  }

  protected override replicatedTensors() {
    return this.ref?.parameters() ?? [];
  }

  protected override extraState(): Record<string, unknown> {
    return { kl: this.kl.state() };
  }

  protected override atResumablePoint(): boolean {
    // The next step generates a new rollout: nothing of the current one is needed any more.
    return this.step % this.config.numIterations === 0;
  }

  protected override loadExtraState(state: Record<string, unknown>): void {
    if (state.kl) this.kl.load(state.kl as KlControllerState);
    this.rollout = null;
  }

  /** Log-probs [rows, n] of the completion tokens under `model` for the given rows of the rollout. */
  private logprobs(model: Qwen2VLForConditionalGeneration, r: Rollout, rows: number[]): Tensor {
    const part = selectRows(r.full, rows);
    // Checkpointing pays only where a backward follows (the policy's forward of the loss).
    const out = model.forward(modelInputs(part), {
      gradientCheckpointing: isGradEnabled() && (this.config.gradientCheckpointing ?? false),
    });
    const hidden = narrow(out.hidden, 1, r.promptLength - 1, r.completionLength);
    const ids = new Int32Array(rows.length * r.completionLength);
    rows.forEach((row, i) => {
      ids.set(
        r.completionIds.subarray(row * r.completionLength, (row + 1) * r.completionLength),
        i * r.completionLength,
      );
    });
    return model.tokenLogprobs(
      hidden,
      Tensor.from(ids, [rows.length, r.completionLength], { dtype: 'int32', device: model.device }),
    );
  }

  private microBatches(): number[][] {
    const total = this.localPrompts * this.config.numGenerations;
    const size = this.config.perDeviceTrainBatchSize;
    return Array.from({ length: total / size }, (_, k) =>
      Array.from({ length: size }, (_, i) => k * size + i),
    );
  }

  /**
   * Samples the completions of a rollout from the policy (`inputs` holds each prompt G times). A
   * seam for tests that replay a given rollout through the trainer's own wiring (fixtures/grpo-step).
   */
  protected sampleCompletions(
    inputs: Qwen2VLInputs,
    options: GenerationConfig,
  ): Pick<GenerationOutput, 'completionIds' | 'completionMask' | 'length'> {
    return generate(this.model, inputs, options);
  }

  private async generateRollout(step: number): Promise<Rollout> {
    const c = this.config;
    const g = c.numGenerations;
    // Every rank draws the step's global prompts and keeps its contiguous share (whole groups).
    const first = this.group.rank * this.localPrompts;
    const rows = this.localPrompts * g;
    const samples = this.samples(this.order.take(c.promptsPerStep).slice(first, first + this.localPrompts));
    const prompts = this.options.data.encodePrompts(samples);
    const repeated = selectRows(
      prompts,
      samples.flatMap((_, b) => new Array<number>(g).fill(b)),
    );
    const gen = tidy(() =>
      this.sampleCompletions(modelInputs(repeated), {
        doSample: true,
        temperature: c.temperature,
        topK: c.topK,
        topP: c.topP,
        maxNewTokens: c.maxCompletionLength,
        stopTokenIds: this.options.data.stopTokenIds,
        padTokenId: this.options.data.padTokenId,
        // One seed per completion from (run seed, step, global prompt index, generation index):
        // a completion does not depend on which rank generates it nor on the rows batched with it.
        seeds: samples.flatMap((_, p) =>
          Array.from({ length: g }, (_, j) => completionSeed(c.seed, step, first + p, j)),
        ),
      }),
    );
    const n = gen.length;
    const texts: string[] = [];
    for (let r = 0; r < rows; r++) {
      const ids: number[] = [];
      for (let t = 0; t < n && gen.completionMask[r * n + t]; t++) ids.push(gen.completionIds[r * n + t]);
      texts.push(this.options.data.decode(ids));
    }
    const rowSamples = samples.flatMap((s) => new Array<S>(g).fill(s));
    const scored = await this.grpo.rewards(texts, rowSamples);
    const rewards = Float32Array.from(scored.total);
    if (c.scaleRewards === 'batch') {
      const bad = rewards.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0)
        throw new RangeError(`reward of completion ${bad} is ${rewards[bad]}: rewards must be finite`);
    }
    // Groups are whole on a rank: their means and stds are local. The batch std of
    // scaleRewards 'batch' is over the global batch (below).
    const { advantages: adv, groupStds: stds } = groupAdvantages({
      rewards,
      groupSize: g,
      scale: c.scaleRewards === 'batch' ? 'none' : c.scaleRewards,
      // 'batch': the float64 group means of the kernel's batch path (its fast 'none' path sums in
      // float32), so one process gets exactly what the kernel's 'batch' gives; non-finite rewards
      // are refused just above.
      nonFinite: c.scaleRewards === 'batch' ? 'ignore' : 'error',
    });
    // No `out` / `outGroupStds` given: new Float32Arrays.
    const advantages = adv as Float32Array;
    if (c.scaleRewards === 'batch') {
      // The kernel's batch scaling, (r - group mean) / (std + 1e-4) with the unbiased std of all
      // rewards, with the global std: two passes in float64 (sum, then squared deviations), each
      // summed over the ranks.
      const sum = this.group.allReduce(
        Float64Array.of(
          rewards.reduce((a, x) => a + x, 0),
          rows,
        ),
        'sum',
      );
      const mean = sum[0] / sum[1];
      const ss = this.group.allReduce(
        Float64Array.of(rewards.reduce((a, x) => a + (x - mean) * (x - mean), 0)),
        'sum',
      );
      const inv = Math.fround(1 / (Math.sqrt(ss[0] / (sum[1] - 1)) + Math.fround(1e-4)));
      for (let i = 0; i < advantages.length; i++) advantages[i] = Math.fround(advantages[i] * inv);
    }
    const groupStds = stds as Float32Array;
    // Full sequences: prompt columns then completion columns; the completion mask extends the prompt's.
    const s = repeated.seqLen;
    const inputIds = new Int32Array(rows * (s + n));
    const attentionMask = new Int32Array(rows * (s + n));
    for (let r = 0; r < rows; r++) {
      inputIds.set(repeated.inputIds.subarray(r * s, (r + 1) * s), r * (s + n));
      inputIds.set(gen.completionIds.subarray(r * n, (r + 1) * n), r * (s + n) + s);
      attentionMask.set(repeated.attentionMask.subarray(r * s, (r + 1) * s), r * (s + n));
      attentionMask.set(gen.completionMask.subarray(r * n, (r + 1) * n), r * (s + n) + s);
    }
    const rollout: Rollout = {
      full: { ...repeated, seqLen: s + n, inputIds, attentionMask },
      promptLength: s,
      completionLength: n,
      completionIds: gen.completionIds,
      completionMask: Float32Array.from(gen.completionMask),
      advantages,
      rewardMean: scored.total.reduce((a, x) => a + x, 0) / rows,
      rewardStd: groupStds.reduce((a, x) => a + x, 0) / groupStds.length,
      perFunction: Object.fromEntries(
        Object.entries(scored.perFunction).map(([k, v]) => [k, v.reduce((a, x) => a + x, 0) / v.length]),
      ),
      meanLength: gen.completionMask.reduce((a, x) => a + x, 0) / rows,
    };
    // Sampling-time log-probs (only needed when a rollout serves several updates) and the reference's.
    const collect = (model: Qwen2VLForConditionalGeneration) => {
      const out = new Float32Array(rows * n);
      for (const mb of this.microBatches())
        tidy(() => noGrad(() => out.set(this.logprobs(model, rollout, mb).toFloat32Array(), mb[0] * n)));
      return out;
    };
    if (c.numIterations > 1) rollout.oldLogprobs = collect(this.model);
    if (this.ref) rollout.refLogprobs = collect(this.ref);
    const records: CompletionRecord[] = texts.map((completion, r) => ({
      step: step + 1,
      prompt: this.options.data.promptText(rowSamples[r]),
      completion,
      reward: scored.total[r],
      rewards: Object.fromEntries(Object.entries(scored.perFunction).map(([k, v]) => [k, v[r]])),
      advantage: advantages[r],
    }));
    // Rank 0 reports the whole step's completions, in global prompt order.
    const all = allGatherJson(this.group, records);
    if (this.group.isMain) await this.options.callbacks?.onCompletions?.(all.flat());
    return rollout;
  }

  protected async computeStep(step: number): Promise<StepValues> {
    const c = this.config;
    const start = performance.now();
    if (step % c.numIterations === 0 || !this.rollout) this.rollout = await this.generateRollout(step);
    const r = this.rollout;
    const n = r.completionLength;
    const beta = this.kl.betaAt(step, c.maxSteps);
    const micro = this.microBatches();
    const w = this.group.worldSize;
    // dapo divides by the completion tokens of the global batch (TRL: num_items_in_batch summed
    // over the processes).
    const tokensInBatch = this.group.allReduce(
      Float64Array.of(r.completionMask.reduce((a, x) => a + x, 0)),
      'sum',
    )[0];
    let loss = 0;
    let kl = 0;
    let low = 0;
    let high = 0;
    for (const rows of micro) {
      const stats = tidy(() => {
        const lp = this.logprobs(this.model, r, rows);
        // This micro-batch's rows of the rollout's host arrays, next to the log-probs (the model's device).
        const rowsOf = (a: Float32Array, perRow: number, shape: readonly number[]) =>
          Tensor.from(a.subarray(rows[0] * perRow, (rows.at(-1)! + 1) * perRow), shape, {
            device: lp.device,
          });
        const tokens = (a: Float32Array | undefined) => a && rowsOf(a, n, lp.shape);
        // grpo / bnpo / dr_grpo average inside a micro-batch: micro-batches are averaged here too
        // (dapo already divides by the tokens of the whole batch). Every rank holds as many
        // micro-batches, so the average of the ranks' gradients is the average over all of them.
        // dapo's sum over the global tokens is W times the ranks' mean: x W (TRL divides
        // num_items_in_batch by the number of processes).
        const weight = c.lossType === 'dapo' ? w : 1 / micro.length;
        const out = grpoLossOp(lp, {
          // Without sampling-time log-probs the ratio is 1: the kernel's default is exactly that.
          oldLogprobs: tokens(r.oldLogprobs),
          refLogprobs: tokens(r.refLogprobs),
          advantages: rowsOf(r.advantages, 1, [rows.length]),
          completionMask: rowsOf(r.completionMask, n, lp.shape),
          beta,
          epsilonLow: c.epsilon,
          epsilonHigh: c.epsilonHigh,
          lossType: c.lossType,
          klEstimator: c.klEstimator,
          maxCompletionLength: c.maxCompletionLength,
          numItemsInBatch: Math.max(tokensInBatch, 1),
          lossScale: weight,
        });
        out.loss.backward();
        return out.stats;
      });
      loss += stats.loss;
      kl += stats.meanKl / micro.length;
      low += stats.clipRatioLow / micro.length;
      high += stats.clipRatioHigh / micro.length;
    }
    const seconds = (performance.now() - start) / 1000;
    // Every number is a mean over equal shares (rows, groups, micro-batches) of the ranks, so the
    // mean over the ranks is the global one (dapo's loss parts are scaled by W above); throughputs add.
    const values = this.globalValues(
      {
        phase: 'grpo',
        loss,
        reward: r.rewardMean,
        reward_std: r.rewardStd,
        ...Object.fromEntries(Object.entries(r.perFunction).map(([k, v]) => [`rewards/${k}/mean`, v])),
        kl,
        beta,
        clip_ratio: low + high,
        'clip_ratio/low': low,
        'clip_ratio/high': high,
        completion_length: r.meanLength,
        tokens_per_second: r.full.attentionMask.reduce((a, x) => a + x, 0) / seconds,
      },
      ['tokens_per_second'],
    );
    // The controller sees the global KL and completions, so it stays the same on every rank.
    this.kl.update(values.kl as number, c.promptsPerStep * c.numGenerations);
    return values;
  }

  override dispose(): void {
    super.dispose();
    this.ref?.dispose();
  }
}
