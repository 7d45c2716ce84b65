import { describe, expect, it } from 'vitest';
import {
  type BatchRewardFunction,
  combineRewards,
  completionText,
  paperReward,
  type RewardContext,
  type RewardFunction,
} from '../src/index.js';

/** A logger that keeps its lines. */
const recorder = () => {
  const lines: string[] = [];
  return { lines, logger: { warn: (line: string) => lines.push(line) } };
};

const GOOD = '<think>20 + 90 = 110</think>\n<answer>70°</answer>';
const WRONG = '<think>hmm</think><answer>40°</answer>';
const NO_FORMAT = 'The answer is <answer>70°</answer>';
const BAD = 'no idea';
const SOLUTION = { solution: '<answer>70°</answer>' };

describe('paperReward (Eq. 1: R = R_acc + alpha * R_format)', () => {
  it('scores accuracy and format, R1-V metric names', async () => {
    const reward = paperReward();
    expect(reward.names).toEqual(['accuracy_reward', 'format_reward']);
    expect(reward.weights).toEqual([1, 1]);
    const batch = await reward.score({
      completions: [GOOD, WRONG, NO_FORMAT, BAD],
      samples: Array(4).fill(SOLUTION),
    });
    expect(batch.perFunction).toEqual({ accuracy_reward: [1, 0, 1, 0], format_reward: [1, 1, 0, 0] });
    expect(batch.totals).toEqual([2, 1, 1, 0]);
    expect(batch.metrics).toEqual({
      'rewards/accuracy_reward/mean': 0.5,
      'rewards/accuracy_reward/failures': 0,
      'rewards/format_reward/mean': 0.5,
      'rewards/format_reward/failures': 0,
      reward: 1,
    });
    expect(batch.failed).toEqual({
      accuracy_reward: [false, false, false, false],
      format_reward: Array(4).fill(false),
    });
  });

  it('weights the format reward by alpha and accepts other rewards', async () => {
    const reward = paperReward({ alpha: 0.5 });
    expect(reward.weights).toEqual([1, 0.5]);
    const batch = await reward.score({ completions: [GOOD, WRONG], samples: [SOLUTION, SOLUTION] });
    expect(batch.totals).toEqual([1.5, 0.5]);
    const counting = paperReward({ alpha: 0 });
    expect((await counting.score({ completions: [GOOD], samples: [SOLUTION] })).totals).toEqual([1]);
  });

  it('reads TRL conversational completions', async () => {
    const batch = await paperReward().score({
      completions: [
        [{ role: 'assistant', content: GOOD }],
        [{ role: 'assistant', content: [{ type: 'text', text: GOOD }] }],
      ],
      samples: [SOLUTION, SOLUTION],
    });
    expect(batch.totals).toEqual([2, 2]);
  });
});

describe('completionText', () => {
  it('takes the first message content, as R1-V reads completion[0]["content"]', () => {
    expect(completionText('plain')).toBe('plain');
    expect(completionText([{ role: 'assistant', content: 'a' }])).toBe('a');
    const parts = [{ type: 'text', text: 'a' }, { type: 'image' }, { type: 'text', text: 'b' }];
    expect(completionText([{ role: 'assistant', content: parts }])).toBe('ab');
    expect(completionText([])).toBe('');
  });
});

describe('combineRewards', () => {
  it('passes completion, prompt, sample and index to custom rewards, sync and async', async () => {
    const seen: [string, RewardContext][] = [];
    const sync: RewardFunction = (completion, context) => {
      seen.push([completion, context]);
      return completion.length;
    };
    const async: RewardFunction = async (_completion, context) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return context.index * 10;
    };
    const reward = combineRewards([
      { name: 'length', fn: sync, weight: 0.5 },
      { name: 'position', fn: async },
    ]);
    const prompts = ['p0', [{ role: 'user', content: 'p1' }]];
    const samples = [{ id: 'a' }, { id: 'b' }];
    const batch = await reward.score({ completions: ['ab', 'abcd'], prompts, samples });
    expect(seen).toEqual([
      ['ab', { prompt: 'p0', sample: { id: 'a' }, index: 0 }],
      ['abcd', { prompt: prompts[1], sample: { id: 'b' }, index: 1 }],
    ]);
    expect(batch.perFunction).toEqual({ length: [2, 4], position: [0, 10] });
    expect(batch.totals).toEqual([1, 12]);
    expect(batch.metrics['rewards/length/mean']).toBe(3);
    expect(batch.metrics.reward).toBe(6.5);
  });

  it('defaults prompts to "" and samples to {}', async () => {
    const reward = combineRewards([
      { name: 'probe', fn: (_c, { prompt, sample }) => (prompt === '' ? 1 : 0) + Object.keys(sample).length },
    ]);
    expect((await reward.score({ completions: ['x'] })).totals).toEqual([1]);
  });

  it('turns every kind of failure into the failure value, counts it and logs each reason once', async () => {
    const { lines, logger } = recorder();
    const failing: RewardFunction = (completion) => {
      switch (completion) {
        case 'throw':
          throw new RangeError('bad index\nsecond line');
        case 'reject':
          return Promise.reject(new Error('remote judge down'));
        case 'nan':
          return Number.NaN;
        case 'inf':
          return Number.POSITIVE_INFINITY;
        case 'string':
          return '1' as unknown as number;
        case 'undefined':
          return undefined as unknown as number;
        case 'hang':
          return new Promise<number>(() => {});
        case 'hostile-then':
          return {
            // biome-ignore lint/suspicious/noThenProperty: a hostile thenable is the point of this case
            then() {
              throw new Error('then exploded');
            },
          } as unknown as number;
        default:
          return 1;
      }
    };
    const reward = combineRewards(
      [
        { name: 'custom', fn: failing },
        { name: 'format_reward', fn: () => 1 },
      ],
      {
        timeoutMs: 50,
        logger,
      },
    );
    const completions = [
      'ok',
      'throw',
      'reject',
      'nan',
      'inf',
      'string',
      'undefined',
      'hang',
      'hostile-then',
    ];
    const batch = await reward.score({ completions });
    expect(batch.perFunction.custom).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(batch.failed.custom).toEqual([false, true, true, true, true, true, true, true, true]);
    expect(batch.totals).toEqual([2, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(batch.metrics['rewards/custom/failures']).toBe(8);
    expect(batch.metrics['rewards/format_reward/failures']).toBe(0);
    const reasons = {
      'threw RangeError: bad index': 1,
      'threw Error: remote judge down': 1,
      'returned NaN': 1,
      'returned Infinity': 1,
      'returned string': 1,
      'returned undefined': 1,
      'timed out after 50 ms': 1,
      'threw Error: then exploded': 1,
    };
    expect(reward.failureStats()).toEqual({
      custom: { count: 8, reasons },
      format_reward: { count: 0, reasons: {} },
    });
    expect(lines).toHaveLength(8);
    expect(lines[0]).toBe(
      "[rewards] 'custom' failed on completion 1 (threw RangeError: bad index); it scores 0. " +
        'Further failures for this reason are counted, not logged.',
    );
    expect(lines).toContain(
      "[rewards] 'custom' failed on completion 7 (timed out after 50 ms); it scores 0. " +
        'Further failures for this reason are counted, not logged.',
    );

    // The same reasons again: counted, not logged again.
    await reward.score({ completions: ['throw', 'nan', 'hang'] });
    expect(lines).toHaveLength(8);
    expect(reward.failureStats().custom!.count).toBe(11);
    expect(reward.failureStats().custom!.reasons['timed out after 50 ms']).toBe(2);
  });

  it('uses the configured failure value, per function when given', async () => {
    const { logger } = recorder();
    const thrower = () => {
      throw new Error('x');
    };
    const reward = combineRewards(
      [
        { name: 'a', fn: thrower },
        { name: 'b', fn: thrower, failureValue: -2, weight: 2 },
      ],
      { failureValue: -1, logger },
    );
    const batch = await reward.score({ completions: ['c'] });
    expect(batch.perFunction).toEqual({ a: [-1], b: [-2] });
    expect(batch.totals).toEqual([-5]);
  });

  it('applies a per-function time limit', async () => {
    const { lines, logger } = recorder();
    const slow: RewardFunction = () => new Promise((resolve) => setTimeout(() => resolve(1), 200));
    const reward = combineRewards(
      [
        { name: 'patient', fn: slow },
        { name: 'hasty', fn: slow, timeoutMs: 20 },
      ],
      { timeoutMs: 5_000, logger },
    );
    const batch = await reward.score({ completions: ['x'] });
    expect(batch.perFunction).toEqual({ patient: [1], hasty: [0] });
    expect(lines).toEqual([
      "[rewards] 'hasty' failed on completion 0 (timed out after 20 ms); it scores 0. " +
        'Further failures for this reason are counted, not logged.',
    ]);
  });

  it('caps the number of distinct reasons it logs', async () => {
    const { lines, logger } = recorder();
    const reward = combineRewards(
      [
        {
          name: 'chatty',
          fn: (_c, { index }) => {
            throw new Error(`failure ${index}`);
          },
        },
      ],
      { logger, maxLoggedReasons: 3 },
    );
    await reward.score({ completions: Array(10).fill('x') });
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe(
      "[rewards] 'chatty' has over 3 distinct failure reasons; new ones are counted only.",
    );
    expect(reward.failureStats().chatty!.count).toBe(10);
  });

  it('survives a logger that throws', async () => {
    const reward = combineRewards(
      [
        {
          name: 'bad',
          fn: () => {
            throw new Error('x');
          },
        },
      ],
      {
        logger: {
          warn: () => {
            throw new Error('disk full');
          },
        },
      },
    );
    expect((await reward.score({ completions: ['x'] })).totals).toEqual([0]);
  });

  it('runs batch reward functions and checks their output', async () => {
    const { lines, logger } = recorder();
    const lengths: BatchRewardFunction = (completions, { samples }) =>
      completions.map((c, i) => c.length + Number(samples[i]!.bonus ?? 0));
    const short: BatchRewardFunction = async (completions) => completions.slice(1).map(() => 1);
    const holes: BatchRewardFunction = (completions) =>
      completions.map((c) => (c === 'nan' ? Number.NaN : 1));
    const crash: BatchRewardFunction = () => {
      throw new TypeError('judge offline');
    };
    const reward = combineRewards(
      [
        { name: 'lengths', batchFn: lengths },
        { name: 'short', batchFn: short },
        { name: 'holes', batchFn: holes },
        { name: 'crash', batchFn: crash },
      ],
      { logger },
    );
    const batch = await reward.score({ completions: ['ab', 'nan'], samples: [{ bonus: 1 }, {}] });
    expect(batch.perFunction).toEqual({ lengths: [3, 3], short: [0, 0], holes: [1, 0], crash: [0, 0] });
    expect(batch.failed).toEqual({
      lengths: [false, false],
      short: [true, true],
      holes: [false, true],
      crash: [true, true],
    });
    expect(reward.failureStats().short!.reasons).toEqual({ 'returned 1 values for 2 completions': 2 });
    expect(reward.failureStats().crash!.reasons).toEqual({ 'threw TypeError: judge offline': 2 });
    expect(lines).toHaveLength(3);
  });

  it('returns empty results for an empty batch', async () => {
    const batch = await paperReward().score({ completions: [] });
    expect(batch).toEqual({
      totals: [],
      perFunction: { accuracy_reward: [], format_reward: [] },
      failed: { accuracy_reward: [], format_reward: [] },
      metrics: {},
    });
  });

  it('rejects misaligned inputs', async () => {
    await expect(paperReward().score({ completions: ['a', 'b'], samples: [SOLUTION] })).rejects.toThrow(
      'combineRewards: got 2 completions but 1 samples; pass one per completion',
    );
    await expect(paperReward().score({ completions: ['a'], prompts: ['p', 'q'] })).rejects.toThrow(
      /2 prompts/,
    );
  });

  it('validates its configuration', () => {
    const fn = () => 1;
    expect(() => combineRewards([])).toThrow('combineRewards: give at least one reward function');
    expect(() =>
      combineRewards([
        { name: 'a', fn },
        { name: 'a', fn },
      ]),
    ).toThrow("the reward name 'a' is used twice");
    expect(() => combineRewards([{ name: '', fn }])).toThrow(/non-empty name/);
    expect(() => combineRewards([{ name: 'a', fn, weight: Number.NaN }])).toThrow(/weight NaN/);
    expect(() => combineRewards([{ name: 'a', fn }], { timeoutMs: 0 })).toThrow(
      'timeoutMs must be > 0, got 0',
    );
    expect(() => combineRewards([{ name: 'a', fn, timeoutMs: -1 }])).toThrow("timeoutMs of 'a' must be > 0");
    expect(() => combineRewards([{ name: 'a', fn, failureValue: Number.NaN }])).toThrow(
      /failureValue of 'a'/,
    );
    expect(() => combineRewards([{ name: 'a', fn: 3 as unknown as RewardFunction }])).toThrow(
      "'a' has no function",
    );
  });

  it('accepts Infinity as "no time limit"', async () => {
    const reward = combineRewards([{ name: 'slow', fn: async () => 1 }], {
      timeoutMs: Number.POSITIVE_INFINITY,
    });
    expect((await reward.score({ completions: ['x'] })).totals).toEqual([1]);
  });
});
