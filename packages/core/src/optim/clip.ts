import { nativeOp } from '../tensor/ops/native.js';
import type { Tensor } from '../tensor/tensor.js';

const sumSquares = nativeOp<(o: { x: Tensor }) => number>('sumSquares');
const affine = nativeOp<(o: { a: Tensor; out: Tensor; alpha: number; beta: number }) => void>('affine');

export interface GradNorm {
  /** ||all gradients||_2 before clipping. */
  totalNorm: number;
  /** min(1, maxNorm / (totalNorm + 1e-6)): what the gradients were (or are to be) multiplied by. */
  clipCoef: number;
}

/**
 * The global gradient norm over the parameters that have gradients (float64 accumulation). Each
 * gradient is reduced where it lives, but the native sumSquares hands its double back to JS, so on
 * CUDA every parameter costs one wait for the stream. Doing it on the device with the float ops
 * (sumAll(mul(g, g)) per parameter) would trade that for a gradient-sized temporary and float32
 * partial sums; a native multi-tensor sumSquares (one call, one read) is what removes the waits.
 */
export function gradNorm(params: Tensor[], maxNorm = Number.POSITIVE_INFINITY): GradNorm {
  let sq = 0;
  for (const p of params) if (p.grad) sq += sumSquares({ x: p.grad });
  const totalNorm = Math.sqrt(sq);
  // torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
  return { totalNorm, clipCoef: Math.min(1, maxNorm / (totalNorm + 1e-6)) };
}

/**
 * Scales every gradient in place, on its own device, so the global norm is at most maxNorm; returns
 * the norm before.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): GradNorm {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0 (got ${maxNorm})`);
  const norm = gradNorm(params, maxNorm);
  if (norm.clipCoef < 1)
    for (const p of params) if (p.grad) affine({ a: p.grad, out: p.grad, alpha: norm.clipCoef, beta: 0 });
  return norm;
}
