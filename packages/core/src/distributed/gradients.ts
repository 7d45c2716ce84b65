// Data parallelism on top of a process group: the same initial weights everywhere, gradients
// averaged over the ranks after each backward (as torch's DistributedDataParallel does, in flat
// buckets so a model of hundreds of tensors costs a few large collectives, not hundreds of small
// ones), and logged numbers reduced over the ranks.
import { keep } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import type { ProcessGroup } from './group.js';

export interface AllReduceGradientsOptions {
  /** Bytes of gradient per all-reduce. Default 25 MiB, DistributedDataParallel's bucket_cap_mb. */
  bucketBytes?: number;
}

const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/**
 * Replaces every parameter's `.grad` by the mean over the ranks of that gradient. A rank where a
 * parameter has no gradient (it took no part in this rank's loss) counts as zeros, so every rank
 * ends with the same gradient; a parameter without a gradient on every rank keeps none (the
 * optimizer then skips it everywhere, as it would in one process). Each bucket is a zeroed flat
 * buffer: the gradients are copied in, all-reduced once, and copied back.
 */
export function allReduceGradients(
  group: ProcessGroup,
  params: readonly Tensor[],
  options: AllReduceGradientsOptions = {},
): void {
  const bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  if (!Number.isInteger(bucketBytes) || bucketBytes < 4)
    throw new RangeError(`allReduceGradients: bucketBytes must be an integer >= 4 (got ${bucketBytes})`);
  params.forEach((p, i) => {
    p.assertUsable('allReduceGradients', `params[${i}]`);
    if (p.dtype !== 'float32')
      throw new TypeError(
        `allReduceGradients: params[${i}] (${p.describe()}) is not float32 (trained weights are)`,
      );
    const g = p.grad;
    if (g && (g.dtype !== 'float32' || g.size !== p.size || g.device !== p.device))
      throw new TypeError(
        `allReduceGradients: params[${i}].grad (${g.describe()}) does not match ${p.describe()}`,
      );
  });
  if (group.backend === 'local') return; // the mean over one rank

  // Which parameters have a gradient on some rank: one small all-reduce of flags.
  const present = Int32Array.from(params, (p) => (p.grad ? 1 : 0));
  group.allReduce(present, 'sum');

  // Buckets: consecutive parameters (in the given order, the same on every rank) of one device,
  // up to bucketBytes; a parameter bigger than that gets a bucket of its own.
  let bucket: number[] = [];
  let bucketElements = 0;
  const flush = () => {
    if (bucket.length > 0) reduceBucket(group, params, bucket, bucketElements);
    bucket = [];
    bucketElements = 0;
  };
  params.forEach((p, i) => {
    if (present[i] === 0 || p.size === 0) return;
    const device = bucket.length > 0 ? params[bucket[0]].device : p.device;
    if (bucket.length > 0 && (device !== p.device || (bucketElements + p.size) * 4 > bucketBytes)) flush();
    bucket.push(i);
    bucketElements += p.size;
  });
  flush();
}

function reduceBucket(
  group: ProcessGroup,
  params: readonly Tensor[],
  indices: number[],
  elements: number,
): void {
  const flat = Tensor.zeros([elements], { device: params[indices[0]].device });
  try {
    let offset = 0;
    for (const i of indices) {
      const g = params[i].grad;
      if (g) flat.storage.copyFrom(g.storage, g.offset * 4, offset * 4, g.size * 4);
      offset += params[i].size; // a missing gradient stays zeros
    }
    group.allReduce(flat, 'mean');
    offset = 0;
    for (const i of indices) {
      const p = params[i];
      let g = p.grad;
      // A gradient that shares memory with another tensor is replaced, not written over.
      if (!g || g.sharesMemory) {
        g?.dispose();
        g = keep(Tensor.empty(p.shape, { device: p.device }));
        p.grad = g;
      }
      g.storage.copyFrom(flat.storage, offset * 4, g.offset * 4, p.size * 4);
      offset += p.size;
    }
  } finally {
    flat.dispose();
  }
}

/** Copies rank `root`'s parameter values into every rank's (the same initial weights everywhere). */
export function broadcastParameters(group: ProcessGroup, params: readonly Tensor[], root = 0): void {
  params.forEach((p, i) => {
    p.assertUsable('broadcastParameters', `params[${i}]`);
    group.broadcast(p, root);
  });
}

/** FNV-1a of the metric names: ranks that report different names must not add up unrelated numbers. */
function namesHash(names: string[]): number {
  let h = 0x811c9dc5;
  for (const ch of names.join('\u0000')) {
    h ^= ch.codePointAt(0) ?? 0;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The sum or mean over the ranks of each number of `metrics` (losses, rewards, token counts), in
 * float64. Every rank must pass the same names (checked: a mismatch throws on every rank).
 */
export function reduceMetrics(
  group: ProcessGroup,
  metrics: Readonly<Record<string, number>>,
  op: 'sum' | 'mean' = 'mean',
): Record<string, number> {
  if (op !== 'sum' && op !== 'mean')
    throw new RangeError(`reduceMetrics: op must be 'sum' or 'mean' (got '${op}')`);
  const names = Object.keys(metrics).sort();
  for (const k of names) {
    if (typeof metrics[k] !== 'number') throw new TypeError(`reduceMetrics: metric '${k}' is not a number`);
  }
  // Every rank's (names hash, count) first, so unequal name lists fail here on every rank rather
  // than mixing numbers or mismatching the sizes of the next collective.
  const ids = group.allGather(new Float64Array([namesHash(names), names.length]));
  for (let r = 0; r < group.worldSize; r++) {
    if (ids[2 * r] !== ids[0] || ids[2 * r + 1] !== ids[1]) {
      throw new Error(
        `reduceMetrics: rank ${r} reports other metric names than rank 0 (this is rank ${group.rank}: ${names.join(', ')}); every rank must report the same`,
      );
    }
  }
  const values = Float64Array.from(names, (k) => metrics[k]);
  group.allReduce(values, op);
  return Object.fromEntries(names.map((k, i) => [k, values[i]]));
}
