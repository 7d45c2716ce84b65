// `othink <command> --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]`:
// the launcher, as torchrun. It starts N copies of the same command (without these flags) with
// RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE / MASTER_ADDR / MASTER_PORT set, which
// @othink/core's initDistributed reads. It shows local rank 0's output as it comes (progress bars
// included) and keeps the others' last lines to show only if they fail; forwards Ctrl-C to every
// rank exactly once (a second Ctrl-C kills the ranks still there after a grace period); and when a rank fails, stops the others (SIGTERM, SIGKILL after a grace
// period) and exits with that rank's code: a failed job never hangs.
import { type ChildProcess, spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import { availableParallelism, constants } from 'node:os';

export interface LaunchOptions {
  /** Processes on this machine (one per GPU on CUDA). */
  nprocPerNode: number;
  /** Machines in the job. Default 1. */
  nnodes?: number;
  /** This machine's index, 0..nnodes-1 (node 0 runs rank 0, which serves the store). Default 0. */
  nodeRank?: number;
  /** Address of node 0: required with more than one node; default 127.0.0.1. */
  masterAddr?: string;
  /** Port of rank 0's store: default a free one on one node, 29500 across nodes. */
  masterPort?: number;
  /** What each rank runs after the node binary: a script and its arguments. */
  command: string[];
  /** Node flags for the ranks (default: this process's, e.g. `--import tsx`). */
  execArgv?: string[];
  /** The ranks' environment before the launcher's variables (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** How long a rank may take to exit after SIGTERM before it is killed. Default 10 s. */
  graceMs?: number;
  /** Where the launcher's own messages and other ranks' failing lines go (default stderr). */
  log?: (text: string) => void;
  /** Where Ctrl-C comes from (default process). */
  signals?: EventEmitter;
}

/** The launcher's options, as `othink train --help` lists them; stripped from the ranks' command. */
export const LAUNCHER_FLAGS = [
  '--nproc-per-node',
  '--nnodes',
  '--node-rank',
  '--master-addr',
  '--master-port',
];

/** `argv` without the launcher's flags and their values (`--flag v` and `--flag=v`). */
export function stripLauncherFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (LAUNCHER_FLAGS.includes(a)) {
      i += 1; // its value
      continue;
    }
    if (LAUNCHER_FLAGS.some((f) => a.startsWith(`${f}=`))) continue;
    out.push(a);
  }
  return out;
}

/** A TCP port nobody listens on now (the OS's pick, released for rank 0's store). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Checks the flags together; the message names the flag. */
export function checkLaunchOptions(o: LaunchOptions): void {
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  if (!Number.isInteger(o.nprocPerNode) || o.nprocPerNode < 1)
    throw new RangeError(`--nproc-per-node must be an integer >= 1 (got ${o.nprocPerNode})`);
  if (!Number.isInteger(nnodes) || nnodes < 1)
    throw new RangeError(`--nnodes must be an integer >= 1 (got ${nnodes})`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes)
    throw new RangeError(`--node-rank must be in 0..${nnodes - 1} for --nnodes ${nnodes} (got ${nodeRank})`);
  if (nnodes > 1 && !o.masterAddr)
    throw new RangeError(
      '--master-addr is required with --nnodes > 1: the address of node 0, where rank 0 serves the rendezvous store',
    );
  if (
    o.masterPort !== undefined &&
    (!Number.isInteger(o.masterPort) || o.masterPort < 1 || o.masterPort > 65535)
  )
    throw new RangeError(`--master-port must be a port number in 1..65535 (got ${o.masterPort})`);
}

/** The last lines a rank wrote (kept to show if it fails). */
class Tail {
  private text = '';
  constructor(private readonly maxBytes = 16_384) {}
  push(chunk: Buffer): void {
    this.text += chunk.toString();
    if (this.text.length > 2 * this.maxBytes) this.text = this.text.slice(-this.maxBytes);
  }
  lines(n: number): string[] {
    return this.text
      .replace(/\n+$/, '')
      .split('\n')
      .slice(-n)
      .filter((l) => l.length > 0);
  }
}

interface Rank {
  rank: number;
  child: ChildProcess;
  tail: Tail | null; // null: its output goes straight to ours
  exited: boolean;
}

function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

/** Signals the rank's process group (its data workers too); a rank already gone is fine. */
function signalRank(r: Rank, signal: NodeJS.Signals): void {
  if (r.exited || r.child.pid === undefined) return;
  try {
    process.kill(-r.child.pid, signal);
  } catch {
    // exited meanwhile
  }
}

/**
 * Runs the ranks of this node until all have exited; resolves with the job's exit code: 0, the
 * first failing rank's code, or (after Ctrl-C) the first non-zero one.
 */
export async function launch(o: LaunchOptions): Promise<number> {
  checkLaunchOptions(o);
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  const nproc = o.nprocPerNode;
  const worldSize = nnodes * nproc;
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  const masterPort = o.masterPort ?? (nnodes === 1 ? await freePort() : 29500);
  const baseEnv = o.env ?? process.env;
  const log = o.log ?? ((t: string) => process.stderr.write(t));
  const signals = o.signals ?? process;
  const graceMs = o.graceMs ?? 10_000;
  // GPUs: rank i of this node sees only the i-th of the GPUs it was given (all when none were).
  const visible = baseEnv.CUDA_VISIBLE_DEVICES?.split(',').filter((d) => d !== '');
  // N ranks on N x all cores would oversubscribe the CPU kernels' OpenMP threads.
  const threads = String(Math.max(1, Math.floor(availableParallelism() / nproc)));

  const ranks: Rank[] = [];
  for (let local = 0; local < nproc; local++) {
    const rank = nodeRank * nproc + local;
    const env: NodeJS.ProcessEnv = {
      ...baseEnv,
      RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(nproc),
      GROUP_RANK: String(nodeRank),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(masterPort),
      OTHINK_LAUNCHED: '1',
    };
    if (visible === undefined) env.CUDA_VISIBLE_DEVICES = String(local);
    else if (visible.length >= nproc) env.CUDA_VISIBLE_DEVICES = visible[local];
    if (nproc > 1 && baseEnv.OMP_NUM_THREADS === undefined) env.OMP_NUM_THREADS = threads;
    const shown = local === 0;
    // Own process group (detached): a terminal's Ctrl-C reaches the launcher only, which forwards
    // it once; reaching the ranks directly too would make it a second Ctrl-C (quit without
    // saving). The IPC channel lets a rank notice the launcher dying (it then stops itself).
    const child = spawn(process.execPath, [...(o.execArgv ?? process.execArgv), ...o.command], {
      env,
      detached: true,
      stdio: shown ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const tail = shown ? null : new Tail();
    if (tail) {
      child.stdout?.on('data', (d: Buffer) => tail.push(d));
      child.stderr?.on('data', (d: Buffer) => tail.push(d));
    }
    ranks.push({ rank, child, tail, exited: false });
  }

  let interrupted = 0;
  let failed: { rank: number; code: number } | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  const killAfterGrace = () => {
    killTimer ??= setTimeout(() => {
      for (const x of ranks) signalRank(x, 'SIGKILL');
    }, graceMs);
  };
  const forward = (signal: NodeJS.Signals) => {
    interrupted += 1;
    for (const r of ranks) signalRank(r, signal);
    // The second Ctrl-C means "quit now": a rank that cannot act on it (blocked joining a group
    // whose peer never comes) is killed after the grace period.
    if (interrupted >= 2) killAfterGrace();
  };
  const onInt = () => forward('SIGINT');
  const onTerm = () => forward('SIGTERM');
  const onHup = () => forward('SIGHUP');
  signals.on('SIGINT', onInt);
  signals.on('SIGTERM', onTerm);
  signals.on('SIGHUP', onHup);

  const report = (r: Rank, code: number) => {
    const others = ranks.filter((x) => !x.exited).length;
    log(
      `\n[launch] rank ${r.rank} exited with code ${code}${others > 0 ? `; stopping the other ${others} rank${others > 1 ? 's' : ''}` : ''}\n`,
    );
    if (r.tail) {
      const lines = r.tail.lines(30);
      if (lines.length > 0) log(`${lines.map((l) => `[rank ${r.rank}] ${l}`).join('\n')}\n`);
    } else {
      log(`[launch] (rank ${r.rank}'s output is above)\n`);
    }
  };

  // A rank ended with `code`: the first failure (outside a Ctrl-C, when ranks end on their own
  // time) stops the others, by force after the grace period.
  const ended = (r: Rank, code: number) => {
    if (code === 0 || failed !== null) return;
    failed = { rank: r.rank, code };
    if (interrupted > 0) return;
    report(r, code);
    for (const x of ranks) signalRank(x, 'SIGTERM');
    killAfterGrace();
  };
  const exits = ranks.map(
    (r) =>
      new Promise<void>((resolve) => {
        r.child.on('exit', (c, s) => {
          r.exited = true;
          // Its last lines may still be in the pipe: let them arrive (a data worker that
          // inherited the pipe could hold it open, hence the bound).
          const settle = setTimeout(done, 500);
          r.child.once('close', done);
          function done() {
            clearTimeout(settle);
            r.child.off('close', done);
            ended(r, exitCode(c, s));
            resolve();
          }
        });
        r.child.on('error', (e) => {
          if (r.exited) return; // an error after the start (a signal to a process gone): 'exit' handles it
          // Not started: no 'exit' follows.
          r.exited = true;
          log(`[launch] cannot start rank ${r.rank}: ${e.message}\n`);
          ended(r, 1);
          resolve();
        });
      }),
  );
  await Promise.all(exits);
  clearTimeout(killTimer);
  signals.off('SIGINT', onInt);
  signals.off('SIGTERM', onTerm);
  signals.off('SIGHUP', onHup);
  const f = failed as { rank: number; code: number } | null;
  return f?.code ?? 0;
}
