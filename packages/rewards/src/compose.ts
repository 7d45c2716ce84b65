// Weighted composition of reward functions with per-function isolation. The total is TRL's
// `(rewards_per_func * reward_weights).sum(dim=1)`; R1-V (TRL 0.14) sums unweighted, which is weight 1.

import { completionText } from './completion.js';
import type {
  BatchRewardFunction,
  ChatMessage,
  Prompt,
  RewardContext,
  RewardFunction,
  RewardLogger,
} from './types.js';

/** Settings shared by both forms of reward spec. */
interface RewardSpecBase {
  /** Metric name, e.g. `accuracy_reward` (logged as `rewards/accuracy_reward/mean`). Unique. */
  name: string;
  /** Multiplier in the total; default 1. The paper's alpha is the weight of `format_reward`. */
  weight?: number;
  /** Overrides {@link CombineRewardsOptions.timeoutMs} for this function. */
  timeoutMs?: number;
  /** Overrides {@link CombineRewardsOptions.failureValue} for this function. */
  failureValue?: number;
}

/** A reward scored one completion at a time. */
export interface RewardSpec extends RewardSpecBase {
  fn: RewardFunction;
}

/** A reward scored a whole batch at a time (TRL's form). */
export interface BatchRewardSpec extends RewardSpecBase {
  batchFn: BatchRewardFunction;
}

export interface CombineRewardsOptions {
  /**
   * Time limit per call of an async reward function, in ms; default 30000; `Infinity` for none. A
   * synchronous function cannot be interrupted in-process (JavaScript has no preemption): run untrusted
   * synchronous code through `createWorkerReward`, which can terminate it.
   */
  timeoutMs?: number;
  /** The value a failed call scores; default 0. */
  failureValue?: number;
  /** Where failures are reported, once per function and distinct reason; default `console`. */
  logger?: RewardLogger;
  /** Distinct failure reasons logged per function before further ones are only counted; default 20. */
  maxLoggedReasons?: number;
}

/** One batch to score. `prompts` and `samples`, when given, align with `completions`. */
export interface RewardInputs {
  /** Completion texts, or TRL's conversational form `[{ role: 'assistant', content }]`. */
  completions: readonly (string | readonly ChatMessage[])[];
  /** Default: `''` for each completion. */
  prompts?: readonly Prompt[];
  /** The dataset rows (R1-V: `solution` repeated G times). Default: `{}` for each completion. */
  samples?: readonly Record<string, unknown>[];
}

export interface RewardBatch {
  /** Weighted sum over the functions, per completion: the `rewards` GRPO normalises per group. */
  totals: number[];
  /** Each function's value per completion (failures replaced by the failure value), unweighted. */
  perFunction: Record<string, number[]>;
  /** Per function, whether the call for each completion failed. */
  failed: Record<string, boolean[]>;
  /**
   * TRL-style metrics of this batch: `reward` (mean total), `rewards/<name>/mean` and
   * `rewards/<name>/failures` (count). Empty for an empty batch.
   */
  metrics: Record<string, number>;
}

/** Failures of one function since the combined reward was created. */
export interface RewardFailureStats {
  count: number;
  /** Count per distinct reason, e.g. `timed out after 30000 ms`, `returned NaN`, `threw Error: ...`. */
  reasons: Record<string, number>;
}

export interface CombinedReward {
  readonly names: readonly string[];
  readonly weights: readonly number[];
  /** Scores a batch. Rejects only on malformed inputs (misaligned arrays), never for a reward's failure. */
  score(inputs: RewardInputs): Promise<RewardBatch>;
  /** Cumulative failures per function name. */
  failureStats(): Record<string, RewardFailureStats>;
}

type Result<T> = { ok: true; value: T } | { ok: false; reason: string };
type Outcome = Result<number>;

const MAX_TIMER_MS = 2 ** 31 - 1;

function describeValue(value: unknown): string {
  if (typeof value === 'number') return `returned ${value}`; // NaN, Infinity, -Infinity
  if (value === null) return 'returned null';
  if (Array.isArray(value)) return 'returned an array';
  return `returned ${typeof value}`;
}

function checkNumber(value: unknown): Outcome {
  return typeof value === 'number' && Number.isFinite(value)
    ? { ok: true, value }
    : { ok: false, reason: describeValue(value) };
}

function describeError(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error ? `${error.name}: ${error.message}` : `${typeof error} ${String(error)}`;
  } catch {
    text = 'an unprintable value';
  }
  const firstLine = text.split('\n', 1)[0]!;
  return `threw ${firstLine.length > 200 ? `${firstLine.slice(0, 200)}...` : firstLine}`;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  try {
    return (
      value !== null &&
      (typeof value === 'object' || typeof value === 'function') &&
      typeof (value as { then?: unknown }).then === 'function'
    );
  } catch {
    return false;
  }
}

/**
 * Calls `fn`, turning a throw, a rejection or a timeout into a failed outcome. A timed-out promise keeps
 * running in the background (promises cannot be cancelled); its result is ignored.
 */
async function settle<T>(
  call: () => unknown,
  timeoutMs: number,
  check: (value: unknown) => Result<T>,
): Promise<Result<T>> {
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    return { ok: false, reason: describeError(error) };
  }
  if (!isThenable(result)) return check(result);
  const settled = Promise.resolve(result).then(check, (error: unknown): Result<T> => {
    return { ok: false, reason: describeError(error) };
  });
  if (!Number.isFinite(timeoutMs)) return settled;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Result<T>>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, reason: `timed out after ${timeoutMs} ms` }),
      Math.min(timeoutMs, MAX_TIMER_MS),
    );
  });
  try {
    return await Promise.race([settled, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function validateSpecs(specs: readonly (RewardSpec | BatchRewardSpec)[], options: CombineRewardsOptions) {
  if (specs.length === 0) throw new Error('combineRewards: give at least one reward function');
  const seen = new Set<string>();
  for (const spec of specs) {
    if (typeof spec.name !== 'string' || spec.name === '') {
      throw new Error('combineRewards: every reward needs a non-empty name (it becomes a metric key)');
    }
    if (seen.has(spec.name)) throw new Error(`combineRewards: the reward name '${spec.name}' is used twice`);
    seen.add(spec.name);
    const fn = 'batchFn' in spec ? spec.batchFn : spec.fn;
    if (typeof fn !== 'function') throw new Error(`combineRewards: reward '${spec.name}' has no function`);
    if (spec.weight !== undefined && !Number.isFinite(spec.weight)) {
      throw new Error(
        `combineRewards: reward '${spec.name}' has weight ${spec.weight}; weights must be finite`,
      );
    }
  }
  for (const [key, value] of [
    ['timeoutMs', options.timeoutMs],
    ...specs.map((spec) => [`timeoutMs of '${spec.name}'`, spec.timeoutMs] as const),
  ] as const) {
    if (value !== undefined && !(value > 0))
      throw new Error(`combineRewards: ${key} must be > 0, got ${value}`);
  }
  for (const [key, value] of [
    ['failureValue', options.failureValue],
    ...specs.map((spec) => [`failureValue of '${spec.name}'`, spec.failureValue] as const),
  ] as const) {
    if (value !== undefined && !Number.isFinite(value)) {
      throw new Error(`combineRewards: ${key} must be a finite number, got ${value}`);
    }
  }
}

function mean(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

/**
 * Combines reward functions into one weighted reward, as the paper's Eq. 1 `R = R_acc + alpha * R_format`
 * does (see `paperReward`). Every function scores every completion; all calls of a batch run
 * concurrently. Each call is isolated: a throw, a rejection, a non-number or non-finite value, or an async
 * call over the time limit scores the failure value for that completion, is counted (batch metrics and
 * {@link CombinedReward.failureStats}) and is logged once per function and distinct reason; the batch
 * goes on. A batch function that fails, or returns the wrong number of values, fails for all its
 * completions; a bad element fails only its own.
 */
export function combineRewards(
  specs: readonly (RewardSpec | BatchRewardSpec)[],
  options: CombineRewardsOptions = {},
): CombinedReward {
  validateSpecs(specs, options);
  const logger = options.logger ?? console;
  const maxLoggedReasons = options.maxLoggedReasons ?? 20;
  const stats = new Map<string, { count: number; reasons: Map<string, number>; overflowLogged: boolean }>();
  for (const spec of specs) stats.set(spec.name, { count: 0, reasons: new Map(), overflowLogged: false });

  const warn = (message: string): void => {
    try {
      logger.warn(message);
    } catch {
      // A broken logger must not stop training either.
    }
  };

  const recordFailure = (name: string, index: number, reason: string, failureValue: number): void => {
    const entry = stats.get(name)!;
    entry.count++;
    const seen = entry.reasons.get(reason);
    if (seen !== undefined) {
      entry.reasons.set(reason, seen + 1);
      return;
    }
    if (entry.reasons.size < maxLoggedReasons) {
      warn(
        `[rewards] '${name}' failed on completion ${index} (${reason}); it scores ${failureValue}. ` +
          'Further failures for this reason are counted, not logged.',
      );
    } else if (!entry.overflowLogged) {
      entry.overflowLogged = true;
      warn(
        `[rewards] '${name}' has over ${maxLoggedReasons} distinct failure reasons; new ones are counted only.`,
      );
    }
    entry.reasons.set(reason, 1);
  };

  const scoreOne = async (
    spec: RewardSpec | BatchRewardSpec,
    completions: string[],
    prompts: readonly Prompt[],
    samples: readonly Record<string, unknown>[],
  ): Promise<Outcome[]> => {
    const timeoutMs = spec.timeoutMs ?? options.timeoutMs ?? 30_000;
    const n = completions.length;
    if ('batchFn' in spec) {
      const whole = await settle(
        () => spec.batchFn(completions, { prompts, samples }),
        timeoutMs,
        (value): Result<Outcome[]> => {
          const list = Array.isArray(value) || value instanceof Float64Array || value instanceof Float32Array;
          if (!list) return { ok: false, reason: `${describeValue(value)}, not an array` };
          const values = value as ArrayLike<unknown>;
          if (values.length !== n) {
            return { ok: false, reason: `returned ${values.length} values for ${n} completions` };
          }
          // Array.from visits holes of sparse arrays (as undefined, a failure).
          return { ok: true, value: Array.from(values, checkNumber) };
        },
      );
      return whole.ok ? whole.value : completions.map(() => whole);
    }
    return Promise.all(
      completions.map((completion, index) => {
        const context: RewardContext = { prompt: prompts[index]!, sample: samples[index]!, index };
        return settle(() => spec.fn(completion, context), timeoutMs, checkNumber);
      }),
    );
  };

  return {
    names: specs.map((spec) => spec.name),
    weights: specs.map((spec) => spec.weight ?? 1),

    async score(inputs: RewardInputs): Promise<RewardBatch> {
      const n = inputs.completions.length;
      for (const key of ['prompts', 'samples'] as const) {
        const given = inputs[key];
        if (given !== undefined && given.length !== n) {
          throw new Error(
            `combineRewards: got ${n} completions but ${given.length} ${key}; pass one per completion`,
          );
        }
      }
      const completions = inputs.completions.map(completionText);
      const prompts = inputs.prompts ?? completions.map(() => '');
      const samples = inputs.samples ?? completions.map(() => ({}));

      const outcomes = await Promise.all(specs.map((spec) => scoreOne(spec, completions, prompts, samples)));

      const totals = new Array<number>(n).fill(0);
      const perFunction: Record<string, number[]> = {};
      const failed: Record<string, boolean[]> = {};
      const metrics: Record<string, number> = {};
      specs.forEach((spec, k) => {
        const failureValue = spec.failureValue ?? options.failureValue ?? 0;
        const weight = spec.weight ?? 1;
        const values = outcomes[k]!.map((outcome, index) => {
          if (outcome.ok) return outcome.value;
          recordFailure(spec.name, index, outcome.reason, failureValue);
          return failureValue;
        });
        values.forEach((value, index) => {
          totals[index]! += weight * value;
        });
        perFunction[spec.name] = values;
        failed[spec.name] = outcomes[k]!.map((outcome) => !outcome.ok);
        if (n > 0) {
          metrics[`rewards/${spec.name}/mean`] = mean(values);
          metrics[`rewards/${spec.name}/failures`] = failed[spec.name]!.filter(Boolean).length;
        }
      });
      if (n > 0) metrics.reward = mean(totals);
      return { totals, perFunction, failed, metrics };
    },

    failureStats(): Record<string, RewardFailureStats> {
      const result: Record<string, RewardFailureStats> = {};
      for (const [name, entry] of stats) {
        result[name] = { count: entry.count, reasons: Object.fromEntries(entry.reasons) };
      }
      return result;
    },
  };
}
