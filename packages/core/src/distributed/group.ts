// A process group, as torch.distributed's: this process's rank in a data-parallel job and the
// collectives between the ranks. One process (no launcher) gets a local group that needs no
// collective library; more run the addon's communicator (gloo on CPU tensors, NCCL on CUDA ones).
import { type DistBackends, type DistReduceOp, dist } from '@othink/native';
import { Tensor } from '../tensor/tensor.js';
import { type DistributedEnv, type Environment, resolveDistributedEnv } from './env.js';

export type ReduceOp = DistReduceOp;

/** Host arrays the collectives also take (Float64Array: metrics summed in double). */
export type HostArray = Float32Array | Int32Array | Float64Array;

export interface InitDistributedOptions {
  /** Where RANK, WORLD_SIZE, ... are read (default process.env); see resolveDistributedEnv. */
  env?: Environment;
  /**
   * Bound of every wait: joining, and each collective (a rank that died is noticed at once; this
   * covers one that hangs, so it must exceed the longest gap between two collectives, e.g. rank 0
   * writing a checkpoint). Default: OTHINK_DIST_TIMEOUT_S, else 30 minutes (torch's default).
   */
  timeoutMs?: number;
  /**
   * Run the native communicator even for a single process (rank 0 serves a store on an ephemeral
   * port, gloo / NCCL with one rank): the multi-process code path, checked on one.
   */
  forceNative?: boolean;
}

const DEFAULT_TIMEOUT_MS = 30 * 60_000;

function timeoutFrom(options: InitDistributedOptions, env: Environment): number {
  if (options.timeoutMs !== undefined) {
    if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1)
      throw new RangeError(
        `initDistributed: timeoutMs must be a positive integer (got ${options.timeoutMs})`,
      );
    return options.timeoutMs;
  }
  const raw = env.OTHINK_DIST_TIMEOUT_S;
  if (raw === undefined || raw === '') return DEFAULT_TIMEOUT_MS;
  const s = Number(raw);
  if (!Number.isFinite(s) || s <= 0)
    throw new RangeError(`OTHINK_DIST_TIMEOUT_S must be a number of seconds > 0 (got '${raw}')`);
  return Math.ceil(s * 1000);
}

function checkBuffer(where: string, x: Tensor | HostArray, op?: ReduceOp): void {
  if (x instanceof Tensor) {
    x.assertUsable(where);
    if (x.dtype !== 'float32' && x.dtype !== 'int32')
      throw new TypeError(`${where}: ${x.describe()}: collectives take float32 or int32 tensors`);
    if (op === 'mean' && x.dtype === 'int32')
      throw new TypeError(
        `${where}: op 'mean' needs a float tensor (an int32 mean is not an int32): use 'sum' and divide`,
      );
  } else if (op === 'mean' && x instanceof Int32Array) {
    throw new TypeError(
      `${where}: op 'mean' needs a float array (an int32 mean is not an int32): use 'sum' and divide`,
    );
  }
}

/**
 * This process's membership of the job. Collectives are called by every rank in the same order
 * with the same sizes, run in place, and block until this rank's result is there; they throw when
 * a peer died or the timeout passed, and the group is then unusable (end the process: the
 * launcher stops the other ranks).
 */
export class ProcessGroup {
  private destroyed = false;

  /** @internal Use initDistributed. */
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    /** Rank on this machine: which GPU is ours. */
    readonly localRank: number,
    /** 'local': one process, no communicator; 'native': the addon's (gloo / NCCL). */
    readonly backend: 'local' | 'native',
    private readonly handle: number,
    /** The job's layout as read from the environment. */
    readonly layout: DistributedEnv,
  ) {}

  /** Whether this rank is rank 0 (writes checkpoints, metrics, logs). */
  get isMain(): boolean {
    return this.rank === 0;
  }

  private usable(where: string): void {
    if (this.destroyed) throw new Error(`${where}: the process group was destroyed`);
  }

  /** Reduces `x` over all ranks, in place: every rank gets the sum (mean, max, min). */
  allReduce<T extends Tensor | HostArray>(x: T, op: ReduceOp = 'sum'): T {
    this.usable('allReduce');
    checkBuffer('allReduce', x, op);
    if (!['sum', 'mean', 'max', 'min'].includes(op))
      throw new RangeError(`allReduce: op must be 'sum', 'mean', 'max' or 'min' (got '${op}')`);
    // One process: every reduction of one value is that value.
    if (this.backend === 'native') dist.allReduce({ group: this.handle, tensor: x, op });
    return x;
  }

  /** Copies rank `root`'s values of `x` into every rank's `x`. */
  broadcast<T extends Tensor | HostArray>(x: T, root = 0): T {
    this.usable('broadcast');
    checkBuffer('broadcast', x);
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize)
      throw new RangeError(
        `broadcast: root must be a rank of the group, 0..${this.worldSize - 1} (got ${root})`,
      );
    if (this.backend === 'native') dist.broadcast({ group: this.handle, tensor: x, root });
    return x;
  }

  /** Every rank's `x` (same shape everywhere), stacked in rank order: `[worldSize, ...x.shape]`. */
  allGather(x: Tensor): Tensor;
  allGather<T extends HostArray>(x: T): T;
  allGather(x: Tensor | HostArray): Tensor | HostArray {
    this.usable('allGather');
    checkBuffer('allGather', x);
    if (x instanceof Tensor) {
      const out = Tensor.empty([this.worldSize, ...x.shape], { dtype: x.dtype, device: x.device });
      if (this.backend === 'native') {
        dist.allGather({ group: this.handle, input: x, output: out });
      } else {
        out.storage.copyFrom(x.storage, x.offset * 4, 0, x.size * 4);
      }
      return out;
    }
    const out = new (x.constructor as new (n: number) => HostArray)(x.length * this.worldSize);
    if (this.backend === 'native') dist.allGather({ group: this.handle, input: x, output: out });
    else out.set(x as never);
    return out;
  }

  /** Returns once every rank has called it. */
  barrier(): void {
    this.usable('barrier');
    if (this.backend === 'native') dist.barrier({ group: this.handle });
  }

  /** Closes the connections (rank 0: stops the store). Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.backend === 'native') dist.destroy({ group: this.handle });
  }
}

/** What this build and machine can use: gloo (several processes on CPU), NCCL (CUDA tensors). */
export function distributedBackends(): DistBackends {
  return dist.backends();
}

/**
 * Joins the job this process was launched into (see resolveDistributedEnv for the variables): a
 * single process gets a local group at once; otherwise it blocks until every rank has joined, and
 * throws a clear error for a port in use, an unreachable master, mismatched world sizes, or a
 * build without gloo.
 */
export function initDistributed(options: InitDistributedOptions = {}): ProcessGroup {
  const env = options.env ?? process.env;
  const layout = resolveDistributedEnv(env);
  const timeoutMs = timeoutFrom(options, env);
  if (layout.worldSize === 1 && !options.forceNative) {
    return new ProcessGroup(0, 1, layout.localRank, 'local', 0, layout);
  }
  const { group, storePort } = dist.init({
    rank: layout.rank,
    worldSize: layout.worldSize,
    masterAddr: layout.masterAddr,
    masterPort: layout.masterPort,
    timeoutMs,
  });
  return new ProcessGroup(layout.rank, layout.worldSize, layout.localRank, 'native', group, {
    ...layout,
    masterPort: storePort,
  });
}
