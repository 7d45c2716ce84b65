// Scaled dot-product attention of Qwen2-VL, softmax in float32 with scale 1/sqrt(D):
// - the LLM's (spec §3.3): causal, grouped-query (query head h reads kv head floor(h / (Hq / Hkv))),
//   an optional key padding mask for left-padded batches, and queries that may be only the last
//   Sq of Sk positions (a KV cache);
// - the vision tower's (spec §2.5): non-causal and restricted to segments (one per image) given by
//   cu_seqlens boundaries.
// The kernel is flash-style (cpu/attention.h): no [S, S] matrix is kept; the backward recomputes
// the scores from the per-row log-sum-exp saved by the forward.
//
// Query rows with no visible key (left-pad queries under the causal mask) output 0 and pass no
// gradient. HF eager attends uniformly there instead; either way those rows are garbage that is
// never compared or used (spec §8.7, fixtures README §1), and 0 keeps them finite and inert.
import { isGradEnabled } from '../autograd.js';
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { checkInputs } from './checks.js';
import { nativeOp } from './native.js';

interface AttentionKernelOptions {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  out: Tensor;
  lse: Tensor;
  batch: number;
  seqQ: number;
  seqK: number;
  headsQ: number;
  headsKv: number;
  dim: number;
  causal: boolean;
  scale: number;
  keyMask?: Tensor;
  cuSeqlens?: Int32Array;
}
const attentionKernel = nativeOp<(o: AttentionKernelOptions) => void>('attention');
const attentionBackwardKernel =
  nativeOp<
    (o: AttentionKernelOptions & { gradOut: Tensor; gradQ?: Tensor; gradK?: Tensor; gradV?: Tensor }) => void
  >('attentionBackward');

export interface AttentionOptions {
  /**
   * Causal mask: with Sq queries and Sk keys, query i is position Sk - Sq + i and sees keys up to
   * it (Sq <= Sk; Sq < Sk is decoding against a KV cache). Required, so that the LLM cannot
   * forget it.
   */
  causal: boolean;
  /** [B, Sk] int32: 1 = attend to the key, 0 = padding (left padding, spec §3.3). */
  keyMask?: Tensor | null;
  /**
   * Segment boundaries [0, c1, ..., N] (vision, spec §2.5): q / k / v [N, H, D] (or [1, N, H, D]),
   * and token i attends only to the keys of its segment. Strictly increasing, ending at N. They are
   * checked on the host and the binding copies them to the kernel's device, so pass host values:
   * a tensor on the GPU is read back first (a wait for the queued work).
   */
  cuSeqlens?: Tensor | Int32Array | readonly number[] | null;
  /** Score scale; default 1 / sqrt(D). */
  scale?: number;
}

/** The sizes of q [B, Sq, Hq, D] / k, v [B, Sk, Hkv, D] (rank 3 tensors: B = 1). */
function readShapes(q: Tensor, k: Tensor, v: Tensor) {
  const shapes = `q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`;
  if ((q.rank !== 3 && q.rank !== 4) || k.rank !== q.rank || v.rank !== q.rank) {
    throw new RangeError(
      `attention: q, k and v must all be [B, S, heads, D] or all [N, heads, D] (got ${shapes})`,
    );
  }
  if (!k.shape.every((d, i) => d === v.shape[i])) {
    throw new RangeError(
      `attention: k ${formatShape(k.shape)} and v ${formatShape(v.shape)} must have the same shape`,
    );
  }
  const lead = q.rank === 4 ? 1 : 0;
  const batch = lead ? q.shape[0] : 1;
  const [seqQ, headsQ, dim] = q.shape.slice(lead);
  const [seqK, headsKv, dimK] = k.shape.slice(lead);
  if ((lead && k.shape[0] !== batch) || dimK !== dim) {
    throw new RangeError(`attention: q and k must share the batch and the head dimension (got ${shapes})`);
  }
  if (headsKv === 0 ? headsQ !== 0 : headsQ % headsKv !== 0) {
    throw new RangeError(
      `attention: the ${headsQ} query heads must be a multiple of the ${headsKv} kv heads (grouped-query attention; got ${shapes})`,
    );
  }
  return { batch, seqQ, seqK, headsQ, headsKv, dim, shapes };
}

/** cuSeqlens as an Int32Array, checked: [0, ..., n] strictly increasing. */
function readSegments(cuSeqlens: NonNullable<AttentionOptions['cuSeqlens']>, n: number): Int32Array {
  let cu: Int32Array;
  if (cuSeqlens instanceof Tensor) {
    checkInputs('attention', { cuSeqlens }, 'int32');
    if (cuSeqlens.rank !== 1)
      throw new RangeError(`attention: cuSeqlens ${formatShape(cuSeqlens.shape)} must be 1-D`);
    cu = cuSeqlens.toTypedArray() as Int32Array;
  } else {
    cu = Int32Array.from(cuSeqlens);
    if (!Array.from(cuSeqlens).every((x, i) => x === cu[i]))
      throw new RangeError(
        `attention: cuSeqlens [${Array.from(cuSeqlens).join(', ')}] must be int32 integers`,
      );
  }
  const list = `[${Array.from(cu).join(', ')}]`;
  if (cu.length < 2 || cu[0] !== 0)
    throw new RangeError(`attention: cuSeqlens ${list} must start at 0 and have an end`);
  for (let i = 1; i < cu.length; i++) {
    if (cu[i] <= cu[i - 1]) throw new RangeError(`attention: cuSeqlens ${list} must increase strictly`);
  }
  if (cu[cu.length - 1] !== n) {
    throw new RangeError(`attention: cuSeqlens ${list} must end at the sequence length ${n}`);
  }
  return cu;
}

/**
 * softmax(scale * q k^T + mask) v per head: q [B, Sq, Hq, D], k / v [B, Sk, Hkv, D] -> [B, Sq, Hq, D]
 * (or rank 3 [N, H, D] -> [N, Hq, D] with B = 1, for the vision tower's segments). Gradients to
 * q, k and v (GQA: dk / dv summed over the query heads of each kv head). Runs on q's device (k, v
 * and keyMask must be there too; cuSeqlens are read on the host and copied over by the binding).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
  checkInputs('attention', { q, k, v });
  const s = readShapes(q, k, v);
  const { causal } = options;
  if (typeof causal !== 'boolean') throw new TypeError('attention: options.causal must be true or false');
  if (causal && s.seqQ > s.seqK) {
    throw new RangeError(
      `attention: causal attention needs no more queries than keys (${s.shapes}); queries are the last Sq positions`,
    );
  }
  const scale = options.scale ?? 1 / Math.sqrt(s.dim);
  if (!Number.isFinite(scale)) throw new RangeError(`attention: scale must be finite (got ${scale})`);
  const keyMask = options.keyMask ?? undefined;
  if (keyMask) {
    checkInputs('attention', { keyMask }, 'int32');
    if (keyMask.device !== q.device)
      throw new Error(`attention: q is on ${q.device} but keyMask is on ${keyMask.device}`);
    if (keyMask.rank !== 2 || keyMask.shape[0] !== s.batch || keyMask.shape[1] !== s.seqK) {
      throw new RangeError(
        `attention: keyMask ${formatShape(keyMask.shape)} must be [B, Sk] = [${s.batch}, ${s.seqK}] (${s.shapes})`,
      );
    }
  }
  let cuSeqlens: Int32Array | undefined;
  if (options.cuSeqlens != null) {
    if (s.batch !== 1 || s.seqQ !== s.seqK) {
      throw new RangeError(`attention: cuSeqlens needs one sequence of queries and keys alike (${s.shapes})`);
    }
    cuSeqlens = readSegments(options.cuSeqlens, s.seqK);
  }

  // No queries, or no keys to attend to: every row is empty, output 0 (as for masked rows).
  const empty = q.size === 0 || k.size === 0;
  const device = { device: q.device };
  const out = empty ? Tensor.zeros(q.shape, device) : Tensor.empty(q.shape, device);
  const lse = Tensor.empty([s.batch, s.headsQ, s.seqQ], device);
  const sizes = {
    batch: s.batch,
    seqQ: s.seqQ,
    seqK: s.seqK,
    headsQ: s.headsQ,
    headsKv: s.headsKv,
    dim: s.dim,
    causal,
    scale,
    ...(cuSeqlens ? { cuSeqlens } : {}),
  };
  if (!empty) attentionKernel({ q, k, v, out, lse, ...sizes, ...(keyMask ? { keyMask } : {}) });
  if (!isGradEnabled() || ![q, k, v].some((t) => t.requiresGrad)) {
    lse.dispose();
    return out;
  }
  // The backward reads the inputs, the output and the row log-sum-exps (and the mask).
  const saved = saveAll(q, k, v, out, lse, ...(keyMask ? [keyMask] : []));
  lse.dispose();
  const [sq, sk, sv, so, slse, smask] = saved;
  return record(
    'attention',
    out,
    [q, k, v],
    (g) => {
      const grads = [q, k, v].map((t) =>
        t.requiresGrad ? (empty ? Tensor.zeros(t.shape, device) : Tensor.empty(t.shape, device)) : undefined,
      );
      const [gradQ, gradK, gradV] = grads;
      if (!empty) {
        attentionBackwardKernel({
          q: sq,
          k: sk,
          v: sv,
          out: so,
          lse: slse,
          ...sizes,
          ...(smask ? { keyMask: smask } : {}),
          gradOut: g,
          ...(gradQ ? { gradQ } : {}),
          ...(gradK ? { gradK } : {}),
          ...(gradV ? { gradV } : {}),
        });
      }
      return grads.map((t) => t ?? null);
    },
    saved,
  );
}
