/**
 * @othink/native: typed entry points of the C++/CUDA addon.
 *
 * Every function takes one options object of typed arrays, tensors and numbers, checks it (lengths,
 * dtypes, devices, ids within the vocabulary, group size dividing the batch) and throws a
 * `TypeError` / `RangeError` that names the argument before any kernel runs.
 *
 * The RL kernels run where their memory is: typed arrays and CPU tensors on the CPU, CUDA tensors
 * (CUDA builds) on the GPU, with the same checks. On the CPU a result the caller did not pass in is
 * a new Float32Array; on CUDA results stay on the device, so every output (`out*`, `gradWeight`,
 * ...) must be a caller-owned CUDA tensor, and only verdicts and statistics come back to the host
 * (a bad target's index, the count of targets, the GRPO loss's numbers).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A float32 input: a typed array, or a tensor (see `TensorLike`) whose memory the kernel reads in
 * place. Where stated (logits, hidden, weight, out of the log-prob backward), a CUDA tensor may also
 * be bfloat16: the CUDA kernels widen it exactly to float32.
 */
export type F32Input = Float32Array | TensorLike;
/** An int32 input: a typed array or an int32 tensor. */
export type I32Input = Int32Array | TensorLike;

export interface LogprobsOptions {
  /** Row-major `[N, V]` logits (float32; bfloat16 as a CUDA tensor). */
  logits: F32Input;
  /** `[N]` token ids in `[0, V)` (or `ignoreIndex`). */
  targets: I32Input;
  vocabSize: number;
  /** Divides the logits before the softmax (sampling temperature). Default 1. */
  temperature?: number;
  /** Also return the entropy of each row's distribution. */
  withEntropy?: boolean;
  /** Rows with this target get log-prob 0 and no gradient (e.g. -100 for masked labels). */
  ignoreIndex?: number;
}

/** Caller-owned `[N]` float32 outputs of the log-prob forwards (required on CUDA). */
export interface LogprobsOutputs {
  outLogprobs?: F32Input;
  outLse?: F32Input;
  /** With `withEntropy`. */
  outEntropy?: F32Input;
}

/** The forward results: the `out*` given, or (CPU only) new Float32Arrays. */
export interface LogprobsResult<A extends F32Input = Float32Array> {
  /** `[N]` log p(target). */
  logprobs: A;
  /** `[N]` log-sum-exp of `logits / temperature`, needed by the backward. */
  lse: A;
  /** `[N]` entropy, when `withEntropy`. */
  entropy?: A;
  /** Targets that are not `ignoreIndex` (counted where the targets are, while checking them). */
  count: number;
}

/** Options with at least one caller-owned output: the results are those buffers. */
type WithOutputs = LogprobsOutputs &
  ({ outLogprobs: F32Input } | { outLse: F32Input } | { outEntropy: F32Input });

export interface LogprobsBackwardOptions extends LogprobsOptions {
  lse: F32Input;
  /** `[N]` d loss / d logprob. */
  gradLogprobs?: F32Input;
  /** `[N]` entropy from the forward, needed with `gradEntropy`. */
  entropy?: F32Input;
  /** `[N]` d loss / d entropy. */
  gradEntropy?: F32Input;
  /** Write dlogits over `logits` (in its dtype) instead of allocating `[N, V]` more. */
  inPlace?: boolean;
  /**
   * Write dlogits into this `[N, V]` buffer (reused across steps: no page faults on fresh memory);
   * float32, or bfloat16 on CUDA. On CUDA either `out` or `inPlace` is required.
   */
  out?: F32Input;
}

export interface FusedLinearOptions {
  /** Row-major `[N, H]` hidden states (float32; bfloat16 as a CUDA tensor, with `weight` bfloat16 too). */
  hidden: F32Input;
  /** Row-major `[V, H]` LM-head weight (logits = hidden @ weight^T), in `hidden`'s dtype. */
  weight: F32Input;
  targets: I32Input;
  hiddenSize: number;
  /**
   * Tokens per chunk; extra memory is `chunkSize * V` floats. Default: about 64 MB of logits on the
   * CPU, 256 MB on CUDA.
   */
  chunkSize?: number;
  temperature?: number;
  withEntropy?: boolean;
  ignoreIndex?: number;
}

export interface FusedLinearBackwardOptions extends FusedLinearOptions {
  lse: F32Input;
  gradLogprobs?: F32Input;
  entropy?: F32Input;
  gradEntropy?: F32Input;
  /**
   * `[V, H]` float32 buffer the weight gradient is added to (gradient accumulation). Default (CPU
   * only): a new zero one.
   */
  gradWeight?: F32Input;
  /** `[N, H]` float32 buffer dHidden is written to. Default (CPU only): a new one. */
  gradHidden?: F32Input;
  /** Set false to skip dHidden (e.g. a frozen trunk). Default true. */
  needGradHidden?: boolean;
  /** Set false to skip dWeight and its `[V, H]` buffer (a frozen LM head). Default true. */
  needGradWeight?: boolean;
}

export interface FusedLinearGrads {
  /** The `gradHidden` passed in, or a new Float32Array (absent with `needGradHidden: false`). */
  gradHidden?: F32Input;
  /** The `gradWeight` passed in, or a new Float32Array (absent with `needGradWeight: false`). */
  gradWeight?: F32Input;
}

export type AdvantageScale = 'group' | 'batch' | 'none';

export interface GroupAdvantagesOptions {
  /** `[B * G]` rewards; the G completions of one prompt are contiguous. */
  rewards: F32Input;
  /** G, completions per prompt. Must divide `rewards.length`. */
  groupSize: number;
  /** Divide by the group's std (default, the paper's Eq. 2), the batch's std, or not at all. */
  scale?: AdvantageScale;
  /**
   * A NaN or infinite reward throws (default) or is left out with advantage 0 (`'ignore'`). On CUDA
   * the check runs on the device before the kernel (one small copy back).
   */
  nonFinite?: 'error' | 'ignore';
  /** Added to the std (R1-V / TRL: 1e-4). */
  eps?: number;
  /**
   * `[B * G]` buffer the advantages are written to (reused across steps: no fresh-memory page
   * faults; required on CUDA, like the two below). When the call throws for a non-finite reward
   * its contents are unspecified.
   */
  out?: F32Input;
  /** `[B]` buffer for the group means (like `out`). */
  outGroupMeans?: F32Input;
  /** `[B]` buffer for the group stds (like `out`). */
  outGroupStds?: F32Input;
}

export interface GroupAdvantagesResult {
  /** `out` when given, else a new Float32Array. */
  advantages: F32Input;
  /** `[B]` group means of the finite rewards (`outGroupMeans` when given). */
  groupMeans: F32Input;
  /** `[B]` unbiased group stds, 0 with fewer than two finite rewards (`outGroupStds` when given). */
  groupStds: F32Input;
}

export type KlEstimator = 'k1' | 'k2' | 'k3' | 'abs';

export interface KlPenaltyOptions {
  logprobs: F32Input;
  refLogprobs: F32Input;
  /** Default `'k3'`: exp(ref - logp) - (ref - logp) - 1, the paper's Eq. 5. */
  estimator?: KlEstimator;
  /** Clamp the value to [-clamp, clamp]; the gradient is 0 where clamped. */
  clamp?: number;
  /** Also return d value / d logprobs. Default true. */
  withGrad?: boolean;
  /**
   * Buffers (length of logprobs) the values / gradients are written to, reused across calls
   * (required on CUDA).
   */
  outValues?: F32Input;
  outGrads?: F32Input;
}

export interface KlPenaltyResult {
  /** `outValues` / `outGrads` when given, else new Float32Arrays. */
  values: F32Input;
  grads?: F32Input;
}

export type GrpoLossType = 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo';

export interface GrpoLossOptions {
  /** `[S, T]` policy log-probs of the completion tokens. */
  logprobs: F32Input;
  /** `[S, T]` log-probs at sampling time; default: `logprobs` (ratio 1, one update per batch). */
  oldLogprobs?: F32Input;
  /** `[S, T]` reference-model log-probs; required when `beta != 0`. */
  refLogprobs?: F32Input;
  /** `[S]` one advantage per sequence. */
  advantages: F32Input;
  /** `[S, T]` 1 up to and including the first EOS, else 0. */
  completionMask: F32Input;
  /** KL weight (GRPO-D: the schedule's value at this step). */
  beta: number;
  /** Default 0.2. */
  epsilonLow?: number;
  /** Default `epsilonLow`. */
  epsilonHigh?: number;
  /** Default `'grpo'`: per-sequence token mean, then mean (the paper's Eq. 4). */
  lossType?: GrpoLossType;
  klEstimator?: KlEstimator;
  klClamp?: number;
  /** dr_grpo divides by `S * maxCompletionLength` (default `T`). */
  maxCompletionLength?: number;
  /** dapo divides by the tokens of the whole generation batch (default: this mask's sum). */
  numItemsInBatch?: number;
  /**
   * Multiplies the loss and its gradient (not the per-token loss), e.g. a micro-batch's weight in
   * the step. The gradient is scaled in float64 and rounded once to float32. Default 1.
   */
  lossScale?: number;
  /** Return d loss / d logprobs. Default true. */
  withGrad?: boolean;
  /** `[S, T]` buffer d loss / d logprobs is written to (reused across steps; required on CUDA). */
  outGrad?: F32Input;
  withPerTokenLoss?: boolean;
  /** `[S, T]` buffer for the per-token loss (required on CUDA with `withPerTokenLoss`). */
  outPerTokenLoss?: F32Input;
  /**
   * A one-element float32 buffer the loss is also written to, where it lives (on CUDA by the last
   * kernel): a loss tensor that stays on the device.
   */
  outLoss?: F32Input;
}

export interface GrpoLossStats {
  /** Mean over sequences of the masked per-sequence mean KL (what TRL logs as `kl`). */
  meanKl: number;
  /** Fraction of tokens clipped below (A < 0, ratio < 1 - epsLow). */
  clipRatioLow: number;
  /** Fraction of tokens clipped above (A > 0, ratio > 1 + epsHigh). */
  clipRatioHigh: number;
  clipRatioRegion: number;
  /** Masked token mean of the importance ratio. */
  meanRatio: number;
  /** Sum of the completion mask. */
  tokens: number;
}

export interface GrpoLossResult {
  /** The loss (times `lossScale`), reduced in float64; on CUDA copied back with the statistics. */
  loss: number;
  /** `outGrad` when given, else a new Float32Array. */
  gradLogprobs?: F32Input;
  /** `outPerTokenLoss` when given, else a new Float32Array. */
  perTokenLoss?: F32Input;
  stats: GrpoLossStats;
}

export interface SgemmOptions {
  /** Row-major `op(a)` is `[m, k]`: `a` is stored `[m, k]`, or `[k, m]` when `transA`. */
  a: Float32Array;
  /** Row-major `op(b)` is `[k, n]`: `b` is stored `[k, n]`, or `[n, k]` when `transB`. */
  b: Float32Array;
  /** `[m, n]` output, required when `beta != 0`; a new one otherwise. */
  c?: Float32Array;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

export interface BuildInfo {
  cuda: boolean;
  simd: 'avx512' | 'avx2' | 'generic';
  threads: number;
}

/** A block of native memory (CPU, or CUDA device memory in CUDA builds). */
export interface NativeStorage {
  readonly byteLength: number;
  readonly device: 'cpu' | 'cuda';
  readonly disposed: boolean;
  /** Frees the memory now; later use throws. */
  dispose(): void;
  /** Copies a typed array into the storage at a byte offset. */
  write(src: ArrayBufferView, byteOffset?: number): void;
  /** Copies bytes of the storage out into a typed array. */
  read(dst: ArrayBufferView, byteOffset?: number): void;
  /** Copies `byteLength` bytes of another storage (any device) into this one. */
  copyFrom(src: NativeStorage, srcByteOffset: number, dstByteOffset: number, byteLength: number): void;
}

export interface MemoryStats {
  /** Bytes of the live storages (as requested). */
  currentBytes: number;
  /** High-water mark of currentBytes since the last resetPeakMemory. */
  peakBytes: number;
  /** Live storages. */
  allocations: number;
  /** CUDA: bytes of freed blocks the caching allocator keeps for reuse (0 on the CPU). */
  cachedBytes: number;
  /** CUDA: all bytes the allocator holds from the driver, live blocks and cached (0 on the CPU). */
  reservedBytes: number;
}

/**
 * A view of native memory the tensor ops accept wherever they take a typed array: `offset` and
 * `size` are in elements. @othink/core's `Tensor` is one.
 */
export interface TensorLike {
  storage: NativeStorage;
  offset: number;
  size: number;
  dtype: 'float32' | 'int32' | 'bfloat16';
}

export interface CudaDeviceInfo {
  available: boolean;
  deviceCount: number;
  device?: number;
  name?: string;
  computeCapability?: string;
  totalMemory?: number;
  multiprocessors?: number;
  runtimeVersion: number;
  driverVersion: number;
  cublas: boolean;
  error?: string;
}

/**
 * What CUDA builds add (`cuda`): the GPU's description. The kernels themselves are the functions
 * above, given CUDA tensors.
 */
export interface CudaExports {
  /** Never throws: `available` says whether kernels can run here, `error` why not. */
  deviceInfo(): CudaDeviceInfo;
}

interface Addon {
  cuda?: CudaExports;
  Storage: new (byteLength: number, device?: 'cpu' | 'cuda', zero?: boolean) => NativeStorage;
  memoryStats(device?: 'cpu' | 'cuda'): MemoryStats;
  resetPeakMemory(device?: 'cpu' | 'cuda'): void;
  emptyCache(device?: 'cpu' | 'cuda'): void;
  ops: Record<string, (options: object) => unknown>;
  tokenLogprobs(o: LogprobsOptions & WithOutputs): LogprobsResult<F32Input>;
  tokenLogprobs(o: LogprobsOptions): LogprobsResult;
  tokenLogprobsBackward(o: LogprobsBackwardOptions): F32Input;
  fusedLinearLogprobs(o: FusedLinearOptions & WithOutputs): LogprobsResult<F32Input>;
  fusedLinearLogprobs(o: FusedLinearOptions): LogprobsResult;
  fusedLinearLogprobsBackward(o: FusedLinearBackwardOptions): FusedLinearGrads;
  groupAdvantages(o: GroupAdvantagesOptions): GroupAdvantagesResult;
  klPenalty(o: KlPenaltyOptions): KlPenaltyResult;
  grpoLoss(o: GrpoLossOptions): GrpoLossResult;
  sgemm(o: SgemmOptions): Float32Array;
  parallelCopy(o: { src: Float32Array; dst: Float32Array }): Float32Array;
  setNumThreads(n: number): void;
  buildInfo(): BuildInfo;
}

const packageRoot = (() => {
  // dist/index.js and index.ts (under vitest) both sit one level from build/ or at the root.
  let dir = dirname(fileURLToPath(import.meta.url));
  if (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

/** Path of the compiled addon (`OTHINK_NATIVE_BINARY` overrides it). */
export const binaryPath =
  process.env.OTHINK_NATIVE_BINARY ?? join(packageRoot, 'build', 'Release', 'othink_native.node');

function load(): Addon {
  // Kernels run between JavaScript work on the main thread, and tests / data workers share the
  // cores: OpenMP threads that spin after each parallel region starve them (measured: a tiny-model
  // training step 6x slower on a loaded 2-core machine). Sleep instead, unless the user chose.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  if (!existsSync(binaryPath)) {
    throw new Error(
      `@othink/native: the compiled addon is missing (${binaryPath}).\n` +
        'Build it with `pnpm build` at the repository root (or `pnpm --filter @othink/native build`);\n' +
        'it needs g++ (C++17), cmake >= 3.18 and OpenMP. Add OTHINK_CUDA=1 for the CUDA kernels.',
    );
  }
  return createRequire(import.meta.url)(binaryPath) as Addon;
}

const addon = load();

/**
 * log_softmax(logits / T)[target] in one read of the logits, with log-sum-exp, optional entropy and
 * the count of targets that are not ignored. CPU or CUDA memory (CUDA: pass the `out*` tensors).
 */
export const tokenLogprobs = addon.tokenLogprobs;
/** d/dlogits of the token log-probs (and entropy), optionally written over the logits (CUDA: `out` or `inPlace`). */
export const tokenLogprobsBackward = addon.tokenLogprobsBackward;
/** Token log-probs from hidden states and the LM head in chunks: `[N, V]` logits never exist. */
export const fusedLinearLogprobs = addon.fusedLinearLogprobs;
/** dHidden and dWeight of `fusedLinearLogprobs`, recomputing each chunk's logits. */
export const fusedLinearLogprobsBackward = addon.fusedLinearLogprobsBackward;
/** GRPO advantages `(r - mean_g) / (std_g + eps)`, unbiased std. */
export const groupAdvantages = addon.groupAdvantages;
/** Per-token KL estimators (k1, k2, k3, abs) and their gradients w.r.t. the policy log-probs. */
export const klPenalty = addon.klPenalty;
/** The fused GRPO / GRPO-D loss with its gradient w.r.t. the log-probs and clip / KL statistics. */
export const grpoLoss = addon.grpoLoss;
/** `c = alpha * op(a) @ op(b) + beta * c` in float32 on all cores. */
export const sgemm = addon.sgemm;
/** `dst.set(src)` split over all cores: the memory-bandwidth yardstick of the benchmarks. */
export const parallelCopy = addon.parallelCopy;
/** Threads the CPU kernels use (default: all cores, or OMP_NUM_THREADS). */
export const setNumThreads = addon.setNumThreads;
/** What the binary was built with. */
export const buildInfo = addon.buildInfo;
/** CUDA builds (`OTHINK_CUDA=1 pnpm build`): `cuda.deviceInfo()`. */
export const cuda: CudaExports | undefined = addon.cuda;
/** Native memory blocks: `new Storage(byteLength, device, zero)`. */
export const Storage = addon.Storage;
/** Live and peak bytes of native tensor memory on a device. */
export const memoryStats = addon.memoryStats;
/** Starts a new peak-memory measurement. */
export const resetPeakMemory = addon.resetPeakMemory;
/**
 * Gives the CUDA caching allocator's free blocks back to the driver (a no-op for the CPU). Tensor
 * work on the GPU is queued in call order on one stream; reading a tensor back waits for it.
 */
export const emptyCache = addon.emptyCache;
/**
 * The tensor kernels behind @othink/core's ops, by name (`ops.matmul`, `ops.rmsNorm`, ...). Each takes
 * one options object of tensors / typed arrays and shapes; outputs are passed in, nothing is returned
 * unless stated. Typed per op in @othink/core.
 */
export const ops = addon.ops;

/** A reduction of the communicator: `mean` is the sum divided by the world size (float types only). */
export type DistReduceOp = 'sum' | 'mean' | 'max' | 'min';
/**
 * What a collective works on, in place: a float32 / int32 tensor (CPU: gloo, CUDA: NCCL) or typed
 * array, or a Float64Array (host memory; e.g. metrics summed in double).
 */
export type DistBuffer = Float32Array | Int32Array | Float64Array | TensorLike;

export interface DistInitOptions {
  rank: number;
  worldSize: number;
  /** Where rank 0 serves the rendezvous store. Default 127.0.0.1. */
  masterAddr?: string;
  /** The store's port; 0 (world size 1 only): an ephemeral one. */
  masterPort?: number;
  /** Bound of every wait (joining, each collective). Default 30 min, as torch's. */
  timeoutMs?: number;
}

export interface DistBackends {
  /** Built with gloo: more than one process can run collectives on CPU memory. */
  gloo: boolean;
  /** libnccl.so.2 loads (CUDA builds): collectives on CUDA memory. */
  nccl: boolean;
  /** Why NCCL cannot be used, when it cannot. */
  ncclError?: string;
}

/**
 * The addon's communicator (native/src/comm): a group joins the ranks through a store that rank 0
 * serves, then runs gloo (CPU memory) or NCCL (CUDA memory) collectives. Calls block until this
 * rank's result is in place, and throw on a dead peer or past the timeout. @othink/core's
 * `initDistributed` wraps it.
 */
export interface NativeDist {
  /** Joins the group (blocks until every rank has): a handle for the other calls, and the store's port. */
  init(o: DistInitOptions): { group: number; storePort: number };
  allReduce(o: { group: number; tensor: DistBuffer; op?: DistReduceOp }): void;
  broadcast(o: { group: number; tensor: DistBuffer; root?: number }): void;
  /** `output` holds worldSize x input's length: rank r's input at r * length. */
  allGather(o: { group: number; input: DistBuffer; output: DistBuffer }): void;
  barrier(o: { group: number }): void;
  /** Closes the group's connections (rank 0: stops the store). Idempotent. */
  destroy(o: { group: number }): void;
  backends(): DistBackends;
}

function distOp(name: string): (options?: object) => unknown {
  return (options?: object) => {
    const fn = addon.ops[name];
    if (typeof fn !== 'function') {
      throw new Error(`@othink/native has no op '${name}': rebuild the addon (pnpm build)`);
    }
    return fn(options as object);
  };
}

/** The communicator (multi-process training); see `NativeDist`. */
export const dist = {
  init: distOp('distInit'),
  allReduce: distOp('distAllReduce'),
  broadcast: distOp('distBroadcast'),
  allGather: distOp('distAllGather'),
  barrier: distOp('distBarrier'),
  destroy: distOp('distDestroy'),
  backends: distOp('distBackends'),
} as NativeDist;
