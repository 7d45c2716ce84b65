/**
 * The measurements themselves. Each job runs in a fresh child process (see child.ts), so its
 * peak RSS is its own, multi-GB buffers are returned to the system when it ends, and the JIT state
 * of one configuration does not leak into the next.
 */
import {
  fusedLinearLogprobs,
  fusedLinearLogprobsBackward,
  groupAdvantages,
  grpoLoss,
  klPenalty,
  parallelCopy,
  sgemm,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '@othink/native';
import { fillUniform, maxAbsDiff, randomTargets, rng, uniform } from './data.js';
import * as naive from './naive.js';
import {
  collectGarbage,
  currentRss,
  now,
  peakRss,
  type Stats,
  stats,
  type Task,
  timeInterleaved,
  timeIt,
} from './timing.js';

/** Marks the result line a child prints on stdout. */
export const RESULT_PREFIX = '@@result ';

function progress(msg: string): void {
  process.stderr.write(`    ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Token log-probs: ours (forward, backward, backward in place), memcpy of the same bytes, naive TS.

export interface LogprobsJob {
  kind: 'logprobs';
  n: number;
  v: number;
  reps: number;
  naiveReps: number;
}

export interface LogprobsJobResult {
  n: number;
  v: number;
  /** N * V * 4: the logits. */
  logitsBytes: number;
  memcpy: Stats;
  forward: Stats;
  backward: Stats;
  backwardInPlace: Stats;
  /** Backward into a caller-owned, already-touched `out` buffer (null when the addon has no `out`). */
  backwardOut: Stats | null;
  naiveForward: Stats;
  naiveBackward: Stats;
  /** max |ours - naive| of the log-probs (all rows) and of dlogits (the first rows). */
  forwardMaxAbsDiff: number;
  backwardMaxAbsDiff: number;
  peakRssBytes: number;
}

/** Whether this addon's tokenLogprobsBackward writes into a given `out` buffer (newer builds). */
function supportsOut(): boolean {
  const v = 8;
  const logits = uniform(2 * v, -1, 1, 5);
  const targets = new Int32Array([1, 2]);
  const lse = tokenLogprobs({ logits, targets, vocabSize: v }).lse;
  const out = new Float32Array(2 * v);
  try {
    return tokenLogprobsBackward({ logits, targets, lse, vocabSize: v, gradLogprobs: lse, out }) === out;
  } catch {
    return false;
  }
}

export function runLogprobs(job: LogprobsJob): LogprobsJobResult {
  const { n, v, reps, naiveReps } = job;
  const bytes = n * v * 4;
  const logits = fillUniform(new Float32Array(n * v), -8, 8, 11);
  const targets = randomTargets(n, v, 12);
  const gradLogprobs = uniform(n, -1, 1, 13);
  const lse = tokenLogprobs({ logits, targets, vocabSize: v }).lse;

  // Phase A: logits + one more [N, V] buffer. Each round: memcpy logits -> copy (timed: the
  // bandwidth peer), the in-place backward over that fresh copy, the backward into a reused `out`
  // buffer (the same copy, overwritten; when the addon has `out`), the forward over the logits.
  const hasOut = supportsOut();
  progress(`ours (forward, backward in place${hasOut ? ', into out' : ''}) and memcpy: ${reps} reps`);
  let copy: Float32Array | null = new Float32Array(n * v).fill(0);
  const tasksA: Task[] = [
    { name: 'memcpy', run: () => parallelCopy({ src: logits, dst: copy! }) },
    {
      name: 'backwardInPlace',
      run: () =>
        tokenLogprobsBackward({ logits: copy!, targets, lse, vocabSize: v, gradLogprobs, inPlace: true }),
    },
    { name: 'forward', run: () => tokenLogprobs({ logits, targets, vocabSize: v }) },
  ];
  if (hasOut)
    tasksA.splice(2, 0, {
      name: 'backwardOut',
      run: () => tokenLogprobsBackward({ logits, targets, lse, vocabSize: v, gradLogprobs, out: copy! }),
    });
  const a = timeInterleaved(tasksA, { warmup: 1, reps });
  copy = null;
  collectGarbage();

  // Phase B: the allocating backward; its fresh (already touched) output is the memcpy target
  // of the same round, so memory stays at two [N, V] buffers.
  progress(`ours (backward, allocating) and memcpy: ${reps} reps`);
  let out: Float32Array | null = null;
  const b = timeInterleaved(
    [
      {
        name: 'backward',
        run: () => {
          out = tokenLogprobsBackward({ logits, targets, lse, vocabSize: v, gradLogprobs }) as Float32Array;
        },
      },
      {
        name: 'memcpy',
        run: () => parallelCopy({ src: logits, dst: out! }),
        after: () => {
          out = null;
          collectGarbage();
        },
      },
    ],
    { warmup: 1, reps },
  );

  // Naive TS: JIT-compiled on a few rows first, then timed on the full size.
  const few = Math.min(n, 8);
  for (let i = 0; i < 3; i++) {
    const s = naive.logSoftmaxGather(logits.subarray(0, few * v), targets.subarray(0, few), v);
    naive.logSoftmaxGatherBackward(
      logits.subarray(0, few * v),
      targets.subarray(0, few),
      s.lse,
      gradLogprobs,
      v,
    );
  }
  progress(`naive TS forward: ${naiveReps} reps`);
  let naiveLogprobs: Float32Array | null = null;
  const naiveForward = timeIt(
    () => {
      naiveLogprobs = naive.logSoftmaxGather(logits, targets, v).logprobs;
    },
    { warmup: 0, reps: naiveReps },
  );
  progress(`naive TS backward: ${naiveReps} reps`);
  const naiveBackward = timeIt(() => naive.logSoftmaxGatherBackward(logits, targets, lse, gradLogprobs, v), {
    warmup: 0,
    reps: naiveReps,
    after: collectGarbage,
  });

  const ours = tokenLogprobs({ logits, targets, vocabSize: v }).logprobs;
  const rows = Math.min(n, 16);
  const sub = logits.subarray(0, rows * v);
  const oursD = tokenLogprobsBackward({
    logits: sub,
    targets: targets.subarray(0, rows),
    lse: lse.subarray(0, rows),
    vocabSize: v,
    gradLogprobs: gradLogprobs.subarray(0, rows),
  }) as Float32Array;
  const naiveD = naive.logSoftmaxGatherBackward(sub, targets.subarray(0, rows), lse, gradLogprobs, v);
  return {
    n,
    v,
    logitsBytes: bytes,
    memcpy: stats([...a.memcpy.samples, ...b.memcpy.samples], [a.memcpy.faults ?? 0, b.memcpy.faults ?? 0]),
    forward: a.forward,
    backward: b.backward,
    backwardInPlace: a.backwardInPlace,
    backwardOut: a.backwardOut ?? null,
    naiveForward,
    naiveBackward,
    forwardMaxAbsDiff: maxAbsDiff(ours, naiveLogprobs!),
    backwardMaxAbsDiff: maxAbsDiff(oursD, naiveD),
    peakRssBytes: peakRss(),
  };
}

// ---------------------------------------------------------------------------------------------
// Fused linear + log-probs: time, GEMM-only time on the same shapes, peak memory vs unfused.

export interface FusedJob {
  kind: 'fused';
  /** `fused`: the chunked kernel; `unfused`: full [N, V] logits via sgemm, tokenLogprobs, in-place backward. */
  mode: 'fused' | 'unfused';
  n: number;
  v: number;
  h: number;
  chunk: number;
  /** Timed forward+backward runs after the first (the first is always timed, and measured for memory). */
  reps: number;
  /** Timed runs of the GEMMs alone (fused mode), interleaved with the kernel's; 0 skips them. */
  gemmReps: number;
}

export interface FusedJobResult {
  mode: 'fused' | 'unfused';
  n: number;
  v: number;
  h: number;
  chunk: number;
  /** Resident memory before the measured run: inputs (hidden, weight, targets, grads, gradWeight) and the runtime. */
  baselineBytes: number;
  /** Peak RSS during the first forward + backward, minus the baseline. */
  peakExtraBytes: number;
  /** The results the API returns (log-probs, lse, gradHidden): memory any implementation must hold. */
  outputBytes: number;
  /** peakExtraBytes - outputBytes: the working memory of the implementation. */
  workspaceBytes: number;
  forward: Stats;
  backward: Stats;
  /**
   * CPU time (user + system, all threads) of the same runs: what the work cost, without the time
   * spent waiting for a core on a loaded machine.
   */
  forwardCpu: Stats;
  backwardCpu: Stats;
  /** The same GEMMs alone, chunk by chunk (fused mode); wall clock and CPU time. */
  gemmForward?: Stats;
  gemmBackward?: Stats;
  gemmForwardCpu?: Stats;
  gemmBackwardCpu?: Stats;
}

/** CPU time of this process (user + system, all threads) in seconds. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Runs fn, appending its wall-clock and CPU seconds. */
function timed<T>(fn: () => T, wall: number[], cpu: number[]): T {
  const c0 = cpuSeconds();
  const t0 = now();
  const r = fn();
  wall.push(now() - t0);
  cpu.push(cpuSeconds() - c0);
  return r;
}

function fusedWarmup(): void {
  // Start the thread pool and touch every binding once, on tiny shapes, before the baseline.
  const h = 16;
  const v = 64;
  const n = 8;
  const hidden = uniform(n * h, -1, 1, 1);
  const weight = uniform(v * h, -1, 1, 2);
  const targets = randomTargets(n, v, 3);
  const gradLogprobs = uniform(n, -1, 1, 4);
  const f = fusedLinearLogprobs({ hidden, weight, targets, hiddenSize: h, chunkSize: 4 });
  fusedLinearLogprobsBackward({
    hidden,
    weight,
    targets,
    hiddenSize: h,
    chunkSize: 4,
    lse: f.lse,
    gradLogprobs,
  });
  const logits = sgemm({ a: hidden, b: weight, m: n, n: v, k: h, transB: true });
  const t = tokenLogprobs({ logits, targets, vocabSize: v });
  tokenLogprobsBackward({ logits, targets, vocabSize: v, lse: t.lse, gradLogprobs, inPlace: true });
}

export function runFused(job: FusedJob): FusedJobResult {
  const { mode, n, v, h, chunk, reps, gemmReps } = job;
  fusedWarmup();
  // Inputs at realistic scales: logits of order 1.
  const scale = 1 / Math.sqrt(h);
  const hidden = fillUniform(new Float32Array(n * h), -1, 1, 21);
  const weight = fillUniform(new Float32Array(v * h), -2 * scale, 2 * scale, 22);
  const targets = randomTargets(n, v, 23);
  const gradLogprobs = uniform(n, -1 / n, 1 / n, 24);
  const gradWeight = new Float32Array(v * h).fill(0);
  collectGarbage();
  const baselineBytes = Math.max(peakRss(), currentRss());

  const fwdSamples: number[] = [];
  const bwdSamples: number[] = [];
  const fwdCpu: number[] = [];
  const bwdCpu: number[] = [];
  let peakExtraBytes = 0;
  let outputBytes = 0;
  let gemmStats: { forward: Stats; backward: Stats; forwardCpu: Stats; backwardCpu: Stats } | null = null;
  if (mode === 'fused') {
    const base = { hidden, weight, targets, hiddenSize: h, chunkSize: chunk };
    const once = (measure: boolean) => {
      const f = timed(() => fusedLinearLogprobs(base), fwdSamples, fwdCpu);
      const g = timed(
        () => fusedLinearLogprobsBackward({ ...base, lse: f.lse, gradLogprobs, gradWeight }),
        bwdSamples,
        bwdCpu,
      );
      if (measure) {
        peakExtraBytes = peakRss() - baselineBytes;
        const gradHidden = g.gradHidden as Float32Array | undefined;
        outputBytes = f.logprobs.byteLength + f.lse.byteLength + (gradHidden?.byteLength ?? 0);
      }
    };
    progress(`fused N=${n} V=${v} H=${h}: first forward + backward (memory)`);
    once(true);
    // Then rounds of [kernel forward + backward, the same GEMMs alone], interleaved so both see the
    // same machine state. The GEMMs alone run per chunk, exactly as the kernel calls them:
    // logits_c = h_c W^T, then (backward) that again, dHidden_c = dlogits_c W, dW += dlogits_c^T h_c.
    const buf = new Float32Array(Math.min(chunk, n) * v).fill(0);
    const gradHidden = new Float32Array(n * h).fill(0);
    const logitsGemm = (c0: number, rows: number) =>
      sgemm({
        a: hidden.subarray(c0 * h, (c0 + rows) * h),
        b: weight,
        c: buf.subarray(0, rows * v),
        m: rows,
        n: v,
        k: h,
        transB: true,
      });
    const gemmFwd = () => {
      for (let c0 = 0; c0 < n; c0 += chunk) logitsGemm(c0, Math.min(chunk, n - c0));
    };
    const gemmBwd = () => {
      for (let c0 = 0; c0 < n; c0 += chunk) {
        const rows = Math.min(chunk, n - c0);
        const d = logitsGemm(c0, rows);
        sgemm({ a: d, b: weight, c: gradHidden.subarray(c0 * h, (c0 + rows) * h), m: rows, n: h, k: v });
        sgemm({
          a: d,
          b: hidden.subarray(c0 * h, (c0 + rows) * h),
          c: gradWeight,
          m: v,
          n: h,
          k: rows,
          transA: true,
          beta: 1,
        });
      }
    };
    const gemmFwdSamples: number[] = [];
    const gemmBwdSamples: number[] = [];
    const gemmFwdCpu: number[] = [];
    const gemmBwdCpu: number[] = [];
    for (let r = 0; r < Math.max(reps, gemmReps); r++) {
      progress(`fused N=${n} V=${v}: round ${r + 1}/${Math.max(reps, gemmReps)}`);
      if (r < reps) {
        collectGarbage();
        once(false);
      }
      if (r < gemmReps) {
        timed(gemmFwd, gemmFwdSamples, gemmFwdCpu);
        timed(gemmBwd, gemmBwdSamples, gemmBwdCpu);
      }
    }
    if (gemmReps > 0) {
      gemmStats = {
        forward: stats(gemmFwdSamples),
        backward: stats(gemmBwdSamples),
        forwardCpu: stats(gemmFwdCpu),
        backwardCpu: stats(gemmBwdCpu),
      };
    }
  } else {
    progress(`unfused N=${n} V=${v} H=${h}: full logits, forward + backward (memory)`);
    const c0 = cpuSeconds();
    let t0 = now();
    const logits = sgemm({ a: hidden, b: weight, m: n, n: v, k: h, transB: true });
    const f = tokenLogprobs({ logits, targets, vocabSize: v });
    fwdSamples.push(now() - t0);
    const c1 = cpuSeconds();
    fwdCpu.push(c1 - c0);
    t0 = now();
    const dlogits = tokenLogprobsBackward({
      logits,
      targets,
      vocabSize: v,
      lse: f.lse,
      gradLogprobs,
      inPlace: true,
    }) as Float32Array;
    const gradHidden = sgemm({ a: dlogits, b: weight, m: n, n: h, k: v });
    sgemm({ a: dlogits, b: hidden, c: gradWeight, m: v, n: h, k: n, transA: true, beta: 1 });
    bwdSamples.push(now() - t0);
    bwdCpu.push(cpuSeconds() - c1);
    peakExtraBytes = peakRss() - baselineBytes;
    outputBytes = f.logprobs.byteLength + f.lse.byteLength + gradHidden.byteLength;
  }

  const result: FusedJobResult = {
    mode,
    n,
    v,
    h,
    chunk,
    baselineBytes,
    peakExtraBytes,
    outputBytes,
    workspaceBytes: peakExtraBytes - outputBytes,
    forward: stats(fwdSamples),
    backward: stats(bwdSamples),
    forwardCpu: stats(fwdCpu),
    backwardCpu: stats(bwdCpu),
  };
  if (gemmStats) {
    result.gemmForward = gemmStats.forward;
    result.gemmBackward = gemmStats.backward;
    result.gemmForwardCpu = gemmStats.forwardCpu;
    result.gemmBackwardCpu = gemmStats.backwardCpu;
  }

  return result;
}

// ---------------------------------------------------------------------------------------------
// Advantages, KL, GRPO loss: ours vs naive TS.

export interface RlJob {
  kind: 'advantages' | 'kl' | 'grpo';
  /** advantages: B prompts x G completions; kl: B = tokens, G = 1; grpo: B = S sequences x G = T tokens. */
  b: number;
  g: number;
  reps: number;
}

export interface RlJobResult {
  kind: RlJob['kind'];
  b: number;
  g: number;
  /** Bytes the kernel must read and write (inputs once, outputs once). */
  bytes: number;
  ours: Stats;
  /** Ours into caller-owned outputs reused across calls (null when the addon has no such option). */
  oursOut: Stats | null;
  /** memcpy of the same number of bytes (the bandwidth limit of a kernel that streams its data). */
  memcpy: Stats;
  naive: Stats;
  maxAbsDiff: number;
  peakRssBytes: number;
}

export function runRl(job: RlJob): RlJobResult {
  const { kind, b, g, reps } = job;
  const n = b * g;
  let oursFn: () => unknown;
  // The same call writing into caller-owned output buffers reused across calls (null when this
  // addon has no such option): no fresh-memory page faults.
  let oursOutFn: (() => unknown) | null = null;
  let naiveFn: () => unknown;
  let check: () => number;
  let bytes: number;
  if (kind === 'advantages') {
    // Binary-ish rewards with some spread, as from accuracy + format rewards.
    const r = rng(31);
    const rewards = new Float32Array(n);
    for (let i = 0; i < n; i++) rewards[i] = (r() < 0.5 ? 1 : 0) + 0.5 * r();
    oursFn = () => groupAdvantages({ rewards, groupSize: g });
    const out = new Float32Array(n).fill(0);
    const outGroupMeans = new Float32Array(b).fill(0);
    const outGroupStds = new Float32Array(b).fill(0);
    const probe = groupAdvantages({ rewards, groupSize: g, out, outGroupMeans, outGroupStds });
    if (probe.advantages === out && probe.groupMeans === outGroupMeans && probe.groupStds === outGroupStds)
      oursOutFn = () => groupAdvantages({ rewards, groupSize: g, out, outGroupMeans, outGroupStds });
    naiveFn = () => naive.groupAdvantages(rewards, g);
    check = () =>
      maxAbsDiff(
        groupAdvantages({ rewards, groupSize: g }).advantages as Float32Array,
        naive.groupAdvantages(rewards, g).advantages,
      );
    bytes = n * 4 * 2 + b * 4 * 2;
  } else if (kind === 'kl') {
    const logprobs = uniform(n, -4, 0, 32);
    const refLogprobs = new Float32Array(n);
    const noise = uniform(n, -0.5, 0.5, 33);
    for (let i = 0; i < n; i++) refLogprobs[i] = logprobs[i] + noise[i];
    oursFn = () => klPenalty({ logprobs, refLogprobs, estimator: 'k3', withGrad: true });
    const outValues = new Float32Array(n).fill(0);
    const outGrads = new Float32Array(n).fill(0);
    const probe = klPenalty({ logprobs, refLogprobs, estimator: 'k3', withGrad: true, outValues, outGrads });
    if (probe.values === outValues && probe.grads === outGrads)
      oursOutFn = () =>
        klPenalty({ logprobs, refLogprobs, estimator: 'k3', withGrad: true, outValues, outGrads });
    naiveFn = () => naive.klK3(logprobs, refLogprobs);
    check = () => {
      const o = klPenalty({ logprobs, refLogprobs, estimator: 'k3', withGrad: true });
      const q = naive.klK3(logprobs, refLogprobs);
      return Math.max(
        maxAbsDiff(o.values as Float32Array, q.values),
        maxAbsDiff(o.grads as Float32Array, q.grads),
      );
    };
    bytes = n * 4 * 4;
  } else {
    const S = b;
    const T = g;
    const r = rng(34);
    const logprobs = uniform(n, -3, 0, 35);
    const oldLogprobs = new Float32Array(n);
    const refLogprobs = new Float32Array(n);
    const completionMask = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      oldLogprobs[i] = logprobs[i] + 0.4 * (r() - 0.5);
      refLogprobs[i] = logprobs[i] + 0.4 * (r() - 0.5);
    }
    for (let s = 0; s < S; s++) {
      const len = Math.floor(T / 4 + r() * ((3 * T) / 4));
      completionMask.fill(1, s * T, s * T + len);
    }
    const advantages = uniform(S, -1.5, 1.5, 36);
    const input = { logprobs, oldLogprobs, refLogprobs, advantages, completionMask, beta: 0.04 };
    oursFn = () => grpoLoss({ ...input, lossType: 'grpo', klEstimator: 'k3', withGrad: true });
    const outGrad = new Float32Array(n).fill(0);
    if (
      grpoLoss({ ...input, lossType: 'grpo', klEstimator: 'k3', withGrad: true, outGrad }).gradLogprobs ===
      outGrad
    )
      oursOutFn = () => grpoLoss({ ...input, lossType: 'grpo', klEstimator: 'k3', withGrad: true, outGrad });
    naiveFn = () => naive.grpoLoss(input);
    check = () => {
      const o = grpoLoss({ ...input, lossType: 'grpo', klEstimator: 'k3', withGrad: true });
      const q = naive.grpoLoss(input);
      return Math.max(Math.abs(o.loss - q.loss), maxAbsDiff(o.gradLogprobs as Float32Array, q.gradLogprobs));
    };
    bytes = n * 4 * 5 + S * 4;
  }
  // The physical limit: memcpy moving the same bytes (half read, half written).
  const copySrc = new Float32Array(Math.ceil(bytes / 8)).fill(1);
  const copyDst = new Float32Array(copySrc.length).fill(0);
  const tasks: Task[] = [
    { name: 'ours', run: oursFn, after: collectGarbage },
    { name: 'memcpy', run: () => parallelCopy({ src: copySrc, dst: copyDst }), after: collectGarbage },
    { name: 'naive', run: naiveFn, after: collectGarbage },
  ];
  if (oursOutFn) tasks.splice(1, 0, { name: 'oursOut', run: oursOutFn, after: collectGarbage });
  const t = timeInterleaved(tasks, { warmup: 3, reps });
  return {
    kind,
    b,
    g,
    bytes,
    ours: t.ours,
    oursOut: t.oursOut ?? null,
    memcpy: t.memcpy,
    naive: t.naive,
    maxAbsDiff: check(),
    peakRssBytes: peakRss(),
  };
}

// ---------------------------------------------------------------------------------------------

export interface GemmProbeJob {
  kind: 'gemm-probe';
  m: number;
  n: number;
  k: number;
}

/** Best-of-3 GFLOP/s of `sgemm` on one shape (only to size the fused-linear section). */
export function runGemmProbe(job: GemmProbeJob): { gflops: number } {
  const { m, n, k } = job;
  const a = uniform(m * k, -1, 1, 41);
  const b = uniform(n * k, -1, 1, 42);
  const c = new Float32Array(m * n).fill(0);
  const t = timeIt(() => sgemm({ a, b, c, m, n, k, transB: true }), { warmup: 1, reps: 3 });
  return { gflops: (2 * m * n * k) / t.min / 1e9 };
}

export type Job = LogprobsJob | FusedJob | RlJob | GemmProbeJob;

export function runJob(job: Job): unknown {
  switch (job.kind) {
    case 'logprobs':
      return runLogprobs(job);
    case 'fused':
      return runFused(job);
    case 'gemm-probe':
      return runGemmProbe(job);
    default:
      return runRl(job);
  }
}
