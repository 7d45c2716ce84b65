import { afterEach, describe, expect, it } from 'vitest';
import { combineRewards, createWorkerReward, type RewardContext, type WorkerReward } from '../src/index.js';

const MODULE = new URL('./fixtures/worker-rewards.mjs', import.meta.url);
const context = (index = 0, sample: Record<string, unknown> = {}): RewardContext => ({
  prompt: 'p',
  sample,
  index,
});

const opened: WorkerReward[] = [];
const open = (exportName?: string, timeoutMs?: number): WorkerReward => {
  const reward = createWorkerReward({ module: MODULE, exportName, timeoutMs });
  opened.push(reward);
  return reward;
};

afterEach(async () => {
  await Promise.all(opened.splice(0).map((reward) => reward.close()));
});

describe('createWorkerReward', () => {
  it('runs the module export in a worker with the completion and context', async () => {
    const reward = open();
    expect(await reward('abc', context(2))).toBe(5);
    expect(await reward('', context(0))).toBe(0);
  });

  it('terminates a synchronous infinite loop and carries on with a fresh worker', async () => {
    const reward = open('spinOnRequest', 300);
    expect(await reward('ok', context())).toBe(1);
    const started = Date.now();
    await expect(reward('spin', context())).rejects.toThrow('timed out after 300 ms; worker terminated');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await reward('ok', context())).toBe(1);
  });

  it('isolates a spinning reward inside combineRewards', async () => {
    const lines: string[] = [];
    const spin = open('spinOnRequest', 300);
    const combined = combineRewards(
      [
        { name: 'untrusted', fn: spin },
        { name: 'one', fn: () => 1 },
      ],
      { logger: { warn: (line) => lines.push(line) } },
    );
    const batch = await combined.score({ completions: ['ok', 'spin', 'ok'] });
    expect(batch.perFunction).toEqual({ untrusted: [1, 0, 1], one: [1, 1, 1] });
    expect(combined.failureStats().untrusted!.reasons).toEqual({
      'threw Error: timed out after 300 ms; worker terminated': 1,
    });
    expect(lines).toHaveLength(1);
  });

  it('reports errors of the function and of the module', async () => {
    await expect(open('thrower')('x', context())).rejects.toThrow('Error: custom failure');
    await expect(open('notAFunction')('x', context())).rejects.toThrow(
      "has no function export 'notAFunction'",
    );
    await expect(open('returnsFunction')('x', context())).rejects.toThrow(/cannot be sent back/);
    await expect(open()('x', context(0, { fn: () => 1 }))).rejects.toThrow(/could not be cloned/);
  });

  it('checks its options and refuses calls once closed', async () => {
    expect(() => createWorkerReward({ module: './relative.mjs' })).toThrow(
      "createWorkerReward: module must be a URL or an absolute path, got './relative.mjs'",
    );
    expect(() => createWorkerReward({ module: MODULE, timeoutMs: 0 })).toThrow(
      /timeoutMs must be a finite number > 0/,
    );
    const reward = open();
    expect(await reward('a', context())).toBe(1);
    await reward.close();
    await expect(reward('a', context())).rejects.toThrow('createWorkerReward: the reward was closed');
  });
});
