/**
 * Attention benchmark: the CPU flash-style attention kernel (`ops.attention` /
 * `ops.attentionBackward` of @othink/native, the kernels behind @othink/core's `attention`) on the
 * shape of Qwen2-VL-2B's LLM layers: batch 1, 12 query heads of 128 dims sharing 2 kv heads (GQA,
 * spec §3.3), causal, sequence lengths 256 / 512 / 1024 / 2048.
 *
 * forwardMs / backwardMs are medians of timed repetitions after one untimed warm-up (the backward
 * from the forward's out and lse, all three gradients). gflops is the useful rate of forward and
 * backward together: with P = S (S + 1) / 2 visible query-key pairs per head, the forward does
 * 4 H D P flops (q k^T and p v) and the backward 10 H D P (the recomputed scores, dP = dO v^T,
 * dV, dQ and dK), counted as in the FlashAttention papers; masked-out work is not counted.
 * `quick` times fewer repetitions.
 */
import { ops } from '@othink/native';
import { median, now } from './timing.js';

export interface AttentionBenchRow {
  seqLen: number;
  /** Query heads (the kv heads are HEADS_KV). */
  heads: number;
  headDim: number;
  forwardMs: number;
  backwardMs: number;
  /** GFLOP/s of forward + backward (see the module comment for the flop count). */
  gflops: number;
}

const SEQ_LENS = [256, 512, 1024, 2048];
const HEADS = 12;
const HEADS_KV = 2;
const HEAD_DIM = 128;

/** Deterministic values in [-1, 1) (a cheap LCG: the timing does not depend on them). */
function filled(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function timeMedian(fn: () => void, warmup: number, reps: number): number {
  const samples: number[] = [];
  for (let r = 0; r < warmup + reps; r++) {
    const t0 = now();
    fn();
    if (r >= warmup) samples.push(now() - t0);
  }
  return median(samples);
}

export async function benchAttention(opts: { quick: boolean }): Promise<AttentionBenchRow[]> {
  const reps = opts.quick ? 2 : 5;
  const rows: AttentionBenchRow[] = [];
  for (const seqLen of SEQ_LENS) {
    const qSize = seqLen * HEADS * HEAD_DIM;
    const kvSize = seqLen * HEADS_KV * HEAD_DIM;
    const q = filled(qSize, 1);
    const k = filled(kvSize, 2);
    const v = filled(kvSize, 3);
    const gradOut = filled(qSize, 4);
    const out = new Float32Array(qSize);
    const lse = new Float32Array(HEADS * seqLen);
    const gradQ = new Float32Array(qSize);
    const gradK = new Float32Array(kvSize);
    const gradV = new Float32Array(kvSize);
    const sizes = {
      batch: 1,
      seqQ: seqLen,
      seqK: seqLen,
      headsQ: HEADS,
      headsKv: HEADS_KV,
      dim: HEAD_DIM,
      causal: true,
    };
    const forward = () => ops.attention({ q, k, v, out, lse, ...sizes });
    const backward = () =>
      ops.attentionBackward({ q, k, v, out, lse, gradOut, gradQ, gradK, gradV, ...sizes });
    const forwardS = timeMedian(forward, 1, reps);
    forward(); // out and lse for the backward
    const backwardS = timeMedian(backward, 1, reps);
    const pairs = (seqLen * (seqLen + 1)) / 2;
    const flops = 14 * HEADS * HEAD_DIM * pairs;
    rows.push({
      seqLen,
      heads: HEADS,
      headDim: HEAD_DIM,
      forwardMs: forwardS * 1e3,
      backwardMs: backwardS * 1e3,
      gflops: flops / (forwardS + backwardS) / 1e9,
    });
    // Let the event loop breathe between sizes (the caller may report progress).
    await new Promise((resolve) => setImmediate(resolve));
  }
  return rows;
}
