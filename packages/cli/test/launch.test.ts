// The launcher (`othink <command> --nproc-per-node N`, run/launch.ts): the ranks' variables, rank 0's
// output shown, a failing rank ending the job with its code and last lines, a rank that ignores
// SIGTERM killed after the grace period, Ctrl-C reaching every rank exactly once; and the hidden
// `othink _dist-selftest` through it, 2 processes on loopback, its collectives' results equal to
// the values computed here.
import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distributedBackends } from '@othink/core';
import { describe, expect, it } from 'vitest';
import { checkLaunchOptions, launch, stripLauncherFlags } from '../src/run/launch.js';

const cliDir = fileURLToPath(new URL('..', import.meta.url));
const main = join(cliDir, 'src', 'main.ts');
const cliEnv = { ...process.env, FORCE_COLOR: '0' };

function othink(args: string[]) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    cwd: cliDir,
    encoding: 'utf8',
    env: cliEnv,
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

describe('launcher flags', () => {
  it('are stripped from the ranks command, in both spellings, up to --', () => {
    expect(
      stripLauncherFlags([
        'train',
        '--nproc-per-node',
        '2',
        '--nnodes=1',
        '-s',
        'a=1',
        '--master-port',
        '123',
        '--node-rank=0',
        '--master-addr',
        'h',
        '--',
        '--nnodes',
      ]),
    ).toEqual(['train', '-s', 'a=1', '--', '--nnodes']);
  });

  it('are checked together, by name', () => {
    const command = ['x.js'];
    expect(() => checkLaunchOptions({ nprocPerNode: 0, command })).toThrow(
      '--nproc-per-node must be an integer >= 1',
    );
    expect(() => checkLaunchOptions({ nprocPerNode: 2, nnodes: 2, nodeRank: 2, command })).toThrow(
      '--node-rank must be in 0..1 for --nnodes 2 (got 2)',
    );
    expect(() => checkLaunchOptions({ nprocPerNode: 2, nnodes: 2, command })).toThrow(
      '--master-addr is required with --nnodes > 1',
    );
    expect(() => checkLaunchOptions({ nprocPerNode: 1, masterPort: 70000, command })).toThrow(
      '--master-port must be a port number in 1..65535 (got 70000)',
    );
    const r = othink(['train', '--node-rank', '1', '--dry-run']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--node-rank needs --nproc-per-node (the launcher's flags go together)");
  });
});

describe('launch()', () => {
  it('gives each rank its variables, and a failing rank ends the job with its code and last lines, killing a rank that ignores SIGTERM after the grace period', async () => {
    // Rank 1 reports its variables and fails; rank 0 ignores SIGTERM and would sleep for a minute.
    const script = `
      const v = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'CUDA_VISIBLE_DEVICES'];
      if (process.env.RANK === '1') {
        console.error(v.map((k) => k + '=' + process.env[k]).join(' '));
        setTimeout(() => process.exit(5), 200);
      } else {
        process.on('SIGTERM', () => {});
        setTimeout(() => {}, 60000);
      }`;
    const logged: string[] = [];
    const t0 = Date.now();
    const code = await launch({
      nprocPerNode: 2,
      masterPort: 29999,
      command: ['-e', script],
      execArgv: [],
      env: { ...process.env, CUDA_VISIBLE_DEVICES: '4,5' },
      graceMs: 800,
      log: (t) => logged.push(t),
    });
    const ms = Date.now() - t0;
    const text = logged.join('');
    expect(code).toBe(5);
    expect(text).toContain('[launch] rank 1 exited with code 5; stopping the other 1 rank');
    expect(text).toContain(
      '[rank 1] RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 CUDA_VISIBLE_DEVICES=5',
    );
    expect(ms).toBeGreaterThanOrEqual(800); // rank 0 outlived the SIGTERM...
    expect(ms).toBeLessThan(10_000); // ...but not the SIGKILL
  });
  it('a second Ctrl-C ends ranks that do not act on it, after the grace period', async () => {
    // Both ranks ignore SIGINT (as one blocked in a collective cannot act on it).
    const script = "process.on('SIGINT', () => {}); setTimeout(() => {}, 60000);";
    const signals = new EventEmitter();
    const t0 = Date.now();
    const job = launch({
      nprocPerNode: 2,
      command: ['-e', script],
      execArgv: [],
      graceMs: 300,
      signals,
      log: () => {},
    });
    await new Promise((r) => setTimeout(r, 300));
    signals.emit('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    signals.emit('SIGINT');
    expect(await job).toBe(128 + constants.signals.SIGKILL);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

const gloo = distributedBackends().gloo;

describe.skipIf(!gloo)(
  `othink _dist-selftest through the launcher${gloo ? '' : ' (skipped: @othink/native was built without gloo; apt-get install libgloo-dev and rebuild)'}`,
  () => {
    it('2 ranks: rank 0 shows the collectives results, equal to the values computed here', () => {
      const r = othink(['_dist-selftest', '--nproc-per-node', '2']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const world = 2;
      const ranks = [0, 1];
      const lines = [
        `selftest: rank 0 of ${world} (native)`,
        `selftest: allReduce sum [${ranks.reduce((a, x) => a + x + 1, 0)}, ${ranks.reduce((a, x) => a + 2 ** x, 0)}]`,
        `selftest: allReduce mean [${ranks.reduce((a, x) => a + 2 * x, 0) / world}]`,
        `selftest: broadcast [${world - 1}, ${10 * (world - 1)}]`,
        `selftest: allGather [${ranks.join(', ')}]`,
        'selftest: barrier ok',
        'selftest: ok',
      ];
      // Rank 0's output only: rank 1 prints nothing.
      expect(r.stdout.trim().split('\n')).toEqual(lines);
    });

    it('a rank that fails ends the job at once with its exit code and its last lines', () => {
      const r = othink(['_dist-selftest', '--nproc-per-node', '2', '--fail-rank', '1']);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('[launch] rank 1 exited with code 3');
      expect(r.stderr).toContain('[rank 1] selftest: rank 1 fails on purpose');
      expect(r.ms).toBeLessThan(30_000);
    });

    it('Ctrl-C reaches every rank exactly once, and the job exits with 130', async () => {
      const markers = mkdtempSync(join(tmpdir(), 'othink-launch-'));
      // In its own process group, as a terminal's foreground job: Ctrl-C goes to the whole group.
      const launcher = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          main,
          '_dist-selftest',
          '--nproc-per-node',
          '2',
          '--sleep-ms',
          '60000',
          '--marker-dir',
          markers,
        ],
        { cwd: cliDir, env: cliEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      const ready = new Promise<void>((resolve) =>
        launcher.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('selftest: barrier ok')) resolve();
        }),
      );
      const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
      await ready;
      const t0 = Date.now();
      process.kill(-(launcher.pid as number), 'SIGINT');
      const code = await exited;
      expect(code).toBe(130);
      expect(Date.now() - t0).toBeLessThan(10_000);
      for (const rank of [0, 1]) {
        expect(readFileSync(join(markers, `rank-${rank}.txt`), 'utf8')).toBe('SIGINT\n');
      }
    });
  },
);
