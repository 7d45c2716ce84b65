// The distributed module: the launchers' variables and their errors, the one-process group, and
// real groups of 1 and 2 processes on loopback (gloo) whose collectives, bucketed gradient
// averaging, parameter broadcast and metric reduction equal what this file computes from the
// ranks' inputs; a rank killed or stuck mid-collective ends the other with a clear error within
// the timeout; a port in use, an unreachable master and mismatched world sizes are refused.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as native from '@othink/native';
import { dist } from '@othink/native';
import { describeGpu } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  allReduceGradients,
  firstSlurmHost,
  initDistributed,
  reduceMetrics,
  resolveDistributedEnv,
  Tensor,
} from '../src/index.js';
import { MISSING_EVERYWHERE, MISSING_ON_RANK1, PARAM_SIZES, rankValues } from './distributed-rank.js';

const rankScript = fileURLToPath(new URL('./distributed-rank.ts', import.meta.url));
const f = Math.fround;

/** A port nobody listens on right now (the OS's pick, released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Rank {
  child: ChildProcess;
  /** Resolves with every `TAG json` line and the exit code. */
  done: Promise<{ code: number | null; lines: Map<string, unknown>; stderr: string }>;
  /** Resolves when the rank prints a line with this tag. */
  waitFor(tag: string): Promise<void>;
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

function startRank(scenario: string, env: Record<string, string>): Rank {
  const child = spawn(process.execPath, ['--import', 'tsx', rankScript], {
    env: { ...process.env, OTHINK_TEST_SCENARIO: scenario, OMP_NUM_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines = new Map<string, unknown>();
  const waiters = new Map<string, () => void>();
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    let nl = stdout.indexOf('\n');
    while (nl >= 0) {
      const line = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      const space = line.indexOf(' ');
      if (space > 0) {
        const tag = line.slice(0, space);
        lines.set(tag, JSON.parse(line.slice(space + 1)));
        waiters.get(tag)?.();
      }
      nl = stdout.indexOf('\n');
    }
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{ code: number | null; lines: Map<string, unknown>; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, lines, stderr })),
  );
  const waitFor = (tag: string) =>
    lines.has(tag) ? Promise.resolve() : new Promise<void>((resolve) => waiters.set(tag, resolve));
  return { child, done, waitFor };
}

function startGroup(
  scenario: string,
  worldSize: number,
  port: number,
  extra: Record<string, string> = {},
): Rank[] {
  return Array.from({ length: worldSize }, (_, rank) =>
    startRank(scenario, {
      RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      LOCAL_RANK: String(rank),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
      ...extra,
    }),
  );
}

async function result(rank: Rank): Promise<Record<string, unknown>> {
  const { code, lines, stderr } = await rank.done;
  const r = lines.get('RESULT');
  if (r === undefined) throw new Error(`rank exited with ${code} and no result; stderr:\n${stderr}`);
  return r as Record<string, unknown>;
}

describe('resolveDistributedEnv: the launchers variables', () => {
  it('no launcher: one process', () => {
    expect(resolveDistributedEnv({})).toMatchObject({
      rank: 0,
      worldSize: 1,
      localRank: 0,
      source: 'single',
    });
  });

  it('torchrun / othink train --nproc-per-node', () => {
    const env = { RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', MASTER_ADDR: 'node0', MASTER_PORT: '1234' };
    expect(resolveDistributedEnv(env)).toEqual({
      rank: 3,
      worldSize: 8,
      localRank: 1,
      localWorldSize: undefined,
      masterAddr: 'node0',
      masterPort: 1234,
      source: 'torchrun',
    });
    // One machine (LOCAL_WORLD_SIZE == WORLD_SIZE): the master defaults to loopback, the port to torch's.
    expect(resolveDistributedEnv({ RANK: '1', WORLD_SIZE: '2', LOCAL_WORLD_SIZE: '2' })).toMatchObject({
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      localRank: 1,
    });
  });

  it('Open MPI and SLURM', () => {
    expect(
      resolveDistributedEnv({
        OMPI_COMM_WORLD_RANK: '5',
        OMPI_COMM_WORLD_SIZE: '16',
        OMPI_COMM_WORLD_LOCAL_RANK: '1',
        OMPI_COMM_WORLD_LOCAL_SIZE: '4',
        MASTER_ADDR: '10.0.0.1',
      }),
    ).toMatchObject({
      rank: 5,
      worldSize: 16,
      localRank: 1,
      localWorldSize: 4,
      masterAddr: '10.0.0.1',
      source: 'openmpi',
    });
    expect(
      resolveDistributedEnv({
        SLURM_PROCID: '9',
        SLURM_NTASKS: '16',
        SLURM_LOCALID: '1',
        SLURM_NODELIST: 'gpu[07-14]',
      }),
    ).toMatchObject({
      rank: 9,
      worldSize: 16,
      localRank: 1,
      masterAddr: 'gpu07',
      masterPort: 29500,
      source: 'slurm',
    });
    expect(
      resolveDistributedEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_LAUNCH_NODE_IPADDR: '10.1.2.3' })
        .masterAddr,
    ).toBe('10.1.2.3');
    expect(firstSlurmHost('node01')).toBe('node01');
    expect(firstSlurmHost('a-1,b-2')).toBe('a-1');
    expect(firstSlurmHost('gpu[3,5-6]')).toBe('gpu3');
    expect(firstSlurmHost('rack[1-2]-node[1-4]')).toBeNull();
  });

  it('bad values are refused by name', () => {
    const bad: [Record<string, string>, string][] = [
      [{ RANK: '0', WORLD_SIZE: '0' }, 'WORLD_SIZE must be an integer >= 1 (got 0)'],
      [{ RANK: '0', WORLD_SIZE: 'two' }, "WORLD_SIZE must be an integer >= 1 (got 'two')"],
      [
        { RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'x' },
        'RANK 2 is out of range for WORLD_SIZE 2 (ranks are 0..1)',
      ],
      [{ RANK: '-1', WORLD_SIZE: '2' }, "RANK must be an integer >= 0 (got '-1')"],
      [{ RANK: '0' }, 'RANK is set but WORLD_SIZE is not'],
      [
        { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'x', MASTER_PORT: '70000' },
        'MASTER_PORT must be a port number',
      ],
      [{ RANK: '1', WORLD_SIZE: '2' }, 'MASTER_ADDR is not set'],
      [
        { SLURM_PROCID: '4', SLURM_NTASKS: '4', MASTER_ADDR: 'x' },
        'SLURM_PROCID 4 is out of range for SLURM_NTASKS 4',
      ],
    ];
    for (const [env, message] of bad) {
      expect(() => resolveDistributedEnv(env), JSON.stringify(env)).toThrow(message);
      expect(() => initDistributed({ env }), JSON.stringify(env)).toThrow(message);
    }
    expect(() => initDistributed({ env: { OTHINK_DIST_TIMEOUT_S: 'soon' } })).toThrow(
      "OTHINK_DIST_TIMEOUT_S must be a number of seconds > 0 (got 'soon')",
    );
  });
});

describe('one process', () => {
  it('the local group needs no library: reductions of one are the values, allGather stacks one', () => {
    const group = initDistributed({ env: {} });
    expect([group.rank, group.worldSize, group.backend, group.isMain]).toEqual([0, 1, 'local', true]);
    const values = rankValues(0, 4, 1);
    const t = Tensor.from(values, [2, 2]);
    expect(Array.from(group.allReduce(t, 'mean').toFloat32Array())).toEqual(values);
    expect(Array.from(group.broadcast(t, 0).toFloat32Array())).toEqual(values);
    const g = group.allGather(t);
    expect(g.shape).toEqual([1, 2, 2]);
    expect(Array.from(g.toFloat32Array())).toEqual(values);
    expect(reduceMetrics(group, { b: 2, a: 1 }, 'sum')).toEqual({ a: 1, b: 2 });
    expect(() => group.broadcast(t, 1)).toThrow('broadcast: root must be a rank of the group, 0..0 (got 1)');
    expect(() => group.allReduce(Tensor.from(Int32Array.from([1]), [1]), 'mean')).toThrow(
      "op 'mean' needs a float",
    );
    group.destroy();
    expect(() => group.barrier()).toThrow('barrier: the process group was destroyed');
  });

  it('allReduceGradients refuses gradients that do not match their parameter', () => {
    const group = initDistributed({ env: {} });
    const p = Tensor.zeros([4], { requiresGrad: true });
    p.grad = Tensor.zeros([3]);
    expect(() => allReduceGradients(group, [p])).toThrow(
      'params[0].grad (Tensor [3] float32 cpu) does not match',
    );
    expect(() => allReduceGradients(group, [p], { bucketBytes: 0 })).toThrow(
      'bucketBytes must be an integer >= 4',
    );
  });
});

const backends = dist.backends();

it.skipIf(backends.gloo)('a build without gloo refuses more than one process, saying what to install', () => {
  const env = { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' };
  expect(() => initDistributed({ env })).toThrow('built without gloo: install libgloo-dev and rebuild');
});

/** What rank r's all-reduced tensors must hold, from the ranks' own inputs. */
function expected(worldSize: number) {
  const ranks = Array.from({ length: worldSize }, (_, r) => r);
  const over = (n: number, seed: number, fold: (acc: number, x: number) => number) =>
    Array.from({ length: n }, (_, i) => ranks.map((r) => rankValues(r, n, seed)[i]).reduce(fold));
  // float32 sums (order does not matter for two ranks); the mean is the float32 sum over the world size.
  const sum = (n: number, seed: number) => over(n, seed, (a, x) => f(a + x));
  const grads = PARAM_SIZES.map((n, i) => {
    if (i === MISSING_EVERYWHERE) return null;
    return Array.from({ length: n }, (_, k) => {
      const total = ranks
        .map((r) => (i === MISSING_ON_RANK1 && r === 1 ? 0 : rankValues(r, n, 10 + i)[k]))
        .reduce((a, x) => f(a + x));
      return f(total / worldSize);
    });
  });
  return {
    sum: sum(6, 1),
    mean: sum(5, 2).map((x) => f(x / worldSize)),
    max: over(4, 3, (a, x) => Math.max(a, x)),
    min: over(4, 3, (a, x) => Math.min(a, x)),
    intSum: [0, 1, 2].map((k) => ranks.map((r) => [r + 1, 100 * r, -7][k]).reduce((a, x) => a + x)),
    broadcast: rankValues(worldSize - 1, 7, 4),
    gatherShape: [worldSize, 3],
    gather: ranks.flatMap((r) => rankValues(r, 3, 5)),
    metrics: {
      loss: ranks.reduce((a, r) => a + 0.5 + r, 0) / worldSize,
      tokens: ranks.reduce((a, r) => a + 10 * (r + 1), 0) / worldSize,
    },
    metricsSum: { tokens: ranks.reduce((a, r) => a + 10 * (r + 1), 0) },
    grads,
    weights: PARAM_SIZES.map((n, i) => rankValues(0, n, 30 + i)),
  };
}

describe('a group of one process through the communicator (store, gloo with one rank)', () => {
  it('gives the values computed here', async () => {
    const [rank0] = startGroup('collectives', 1, 0, { FORCE_NATIVE: '1' });
    const r = await result(rank0);
    expect(r).toMatchObject({ rank: 0, worldSize: 1, backend: 'native' });
    expect(r).toMatchObject(expected(1));
  });
});

describe.skipIf(!backends.gloo)(
  `two processes on loopback (gloo)${backends.gloo ? '' : ' (skipped: @othink/native was built without gloo; apt-get install libgloo-dev and rebuild)'}`,
  () => {
    it('all-reduce, broadcast, all-gather, barrier, bucketed gradients, parameters and metrics equal the values computed here', async () => {
      const port = await freePort();
      const ranks = startGroup('collectives', 2, port);
      const results = await Promise.all(ranks.map(result));
      const want = expected(2);
      results.forEach((r, rank) => {
        expect(r).toMatchObject({ rank, worldSize: 2, backend: 'native' });
        // Exact: a sum of two float32 values does not depend on the order.
        expect(r).toMatchObject(want);
      });
    });

    it('a port in use and an unreachable master are clear errors', async () => {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, resolve));
      const taken = (server.address() as { port: number }).port;
      try {
        const env = { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(taken) };
        expect(() => initDistributed({ env, timeoutMs: 2000 })).toThrow(
          `MASTER_PORT ${taken} is already in use on this machine`,
        );
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      const port = await freePort();
      const env = { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
      const t0 = Date.now();
      expect(() => initDistributed({ env, timeoutMs: 1500 })).toThrow(
        `could not connect to 127.0.0.1:${port} (last error: Connection refused) within 1.5s: is rank 0 running`,
      );
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(() =>
        initDistributed({ env: { ...env, MASTER_ADDR: 'no-such-host.invalid' }, timeoutMs: 1500 }),
      ).toThrow("cannot resolve 'no-such-host.invalid'");
    });
    it('a rank killed mid-collective ends the other with a clear error at once, well within the timeout', async () => {
      const port = await freePort();
      const [rank0, rank1] = startGroup('peer-dies', 2, port, { TIMEOUT_MS: '60000' });
      await Promise.all([rank0.waitFor('ENTER'), rank1.waitFor('READY')]);
      rank1.child.kill('SIGKILL');
      const r = await result(rank0);
      expect(r.error).toContain(
        'allReduce failed on rank 0: a peer closed its connection, another rank died or was stopped',
      );
      expect(r.ms).toBeLessThan(10_000);
      expect((await rank1.done).code).toBeNull(); // killed
    });

    it('a rank that hangs makes the other give up at the timeout, naming it', async () => {
      const port = await freePort();
      const [rank0, rank1] = startGroup('peer-hangs', 2, port, { TIMEOUT_MS: '1500' });
      const r = await result(rank0);
      rank1.child.kill('SIGKILL');
      expect(r.error).toContain('allReduce timed out after 1.5s on rank 0: another rank is stuck');
      expect(r.ms).toBeGreaterThanOrEqual(1400);
      expect(r.ms).toBeLessThan(10_000);
    });

    it('ranks started with different WORLD_SIZEs are refused on both sides', async () => {
      const port = await freePort();
      const env = { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
      const rank0 = startRank('join', { ...env, RANK: '0', WORLD_SIZE: '2' });
      const rank1 = startRank('join', { ...env, RANK: '1', WORLD_SIZE: '3' });
      const [r0, r1] = await Promise.all([result(rank0), result(rank1)]);
      const message = 'WORLD_SIZE mismatch: rank 1 has WORLD_SIZE=3 but rank 0 has WORLD_SIZE=2';
      expect(r0.error).toContain(message);
      expect(r1.error).toContain(message);
    });
  },
);

describeGpu(native, 'NCCL on CUDA tensors, through the communicator with one rank', () => {
  const ncclMissing = backends.nccl ? null : (backends.ncclError ?? 'NCCL unavailable');
  it.skipIf(ncclMissing !== null)(
    `all-reduce, broadcast and all-gather of CUDA tensors${ncclMissing ? ` (skipped: ${ncclMissing})` : ''}`,
    () => {
      const group = initDistributed({ env: {}, forceNative: true, timeoutMs: 60_000 });
      try {
        const values = rankValues(0, 1 << 20, 7);
        const t = Tensor.from(values, [1 << 20], { device: 'cuda' });
        // One rank: the sum and the mean (ncclAvg) are the values, bit for bit.
        expect(Array.from(group.allReduce(t, 'sum').toFloat32Array())).toEqual(values);
        expect(Array.from(group.allReduce(t, 'mean').toFloat32Array())).toEqual(values);
        expect(Array.from(group.broadcast(t, 0).toFloat32Array())).toEqual(values);
        const g = group.allGather(Tensor.from(values.slice(0, 5), [5], { device: 'cuda' }));
        expect([g.device, ...g.shape]).toEqual(['cuda', 1, 5]);
        expect(Array.from(g.toFloat32Array())).toEqual(values.slice(0, 5));
        const p = Tensor.zeros([3], { device: 'cuda', requiresGrad: true });
        p.grad = Tensor.from([1, 2, 3], [3], { device: 'cuda' });
        allReduceGradients(group, [p]);
        expect(Array.from(p.grad.toFloat32Array())).toEqual([1, 2, 3]);
      } finally {
        group.destroy();
      }
    },
  );
});
