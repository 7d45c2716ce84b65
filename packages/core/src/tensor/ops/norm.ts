// RMSNorm and LayerNorm over the last dimension, on the native kernels (native/src/cpu/norm.h).
// The forward keeps the per-row statistics (rstd, and the mean for LayerNorm: float32 [rows]) for
// the backward, which recomputes the normalised rows from them rather than storing them.
import { isGradEnabled } from '../autograd.js';
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { checkInputs, rowsCols } from './checks.js';
import { nativeOp } from './native.js';

interface RowShape {
  rows: number;
  hidden: number;
}

const rmsNormKernel =
  nativeOp<(o: RowShape & { x: Tensor; weight: Tensor; out: Tensor; rstd: Tensor; eps: number }) => void>(
    'rmsNorm',
  );
const rmsNormBackwardKernel =
  nativeOp<
    (
      o: RowShape & {
        grad: Tensor;
        x: Tensor;
        weight: Tensor;
        rstd: Tensor;
        gradX?: Tensor;
        gradWeight?: Tensor;
      },
    ) => void
  >('rmsNormBackward');
const layerNormKernel =
  nativeOp<
    (
      o: RowShape & {
        x: Tensor;
        weight: Tensor;
        bias: Tensor;
        out: Tensor;
        mean: Tensor;
        rstd: Tensor;
        eps: number;
      },
    ) => void
  >('layerNorm');
const layerNormBackwardKernel =
  nativeOp<
    (
      o: RowShape & {
        grad: Tensor;
        x: Tensor;
        weight: Tensor;
        mean: Tensor;
        rstd: Tensor;
        gradX?: Tensor;
        gradWeight?: Tensor;
        gradBias?: Tensor;
      },
    ) => void
  >('layerNormBackward');

/**
 * The default epsilon. Models pass their own (Qwen2-VL: model/config.ts QWEN2VL_NORM_EPS, also
 * 1e-6); this is only what a caller that names none gets.
 */
const DEFAULT_NORM_EPS = 1e-6;

/** Checks that a [hidden] parameter matches x's last dimension; returns x as rows x hidden. */
function checkRowParam(op: string, x: Tensor, name: string, p: Tensor): RowShape {
  if (x.rank < 1) throw new RangeError(`${op}: x ${formatShape(x.shape)} must have at least one dimension`);
  if (p.rank !== 1 || p.shape[0] !== x.shape.at(-1)) {
    throw new RangeError(
      `${op}: ${name} ${formatShape(p.shape)} does not match the last dimension of x ${formatShape(x.shape)}`,
    );
  }
  const [rows, hidden] = rowsCols(x);
  return { rows, hidden };
}

function checkEps(op: string, eps: number): void {
  if (!Number.isFinite(eps) || eps < 0)
    throw new RangeError(`${op}: eps must be a finite number >= 0 (got ${eps})`);
}

/**
 * Zeros for the gradients of an empty input (no kernel call: the kernels take positive sizes), on
 * the input's device.
 */
function zerosLike(t: Tensor): Tensor {
  return Tensor.zeros(t.shape, { device: t.device });
}

/**
 * RMSNorm over the last dimension: `x * rsqrt(mean(x^2) + eps) * weight`, statistics in float64
 * (HF computes them in float32, spec §3.2). x [..., H], weight [H].
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps = DEFAULT_NORM_EPS): Tensor {
  checkInputs('rmsNorm', { x, weight });
  const shape = checkRowParam('rmsNorm', x, 'weight', weight);
  checkEps('rmsNorm', eps);
  // Output and per-row statistics on x's device (weight is there too: checkInputs).
  const device = { device: x.device };
  const out = Tensor.empty(x.shape, device);
  const empty = shape.rows === 0 || shape.hidden === 0;
  const rstd = Tensor.empty([shape.rows], device);
  if (!empty) rmsNormKernel({ x, weight, out, rstd, eps, ...shape });
  if (!isGradEnabled() || !(x.requiresGrad || weight.requiresGrad)) {
    rstd.dispose();
    return out;
  }
  const wantX = x.requiresGrad;
  const wantW = weight.requiresGrad;
  const saved = saveAll(x, weight, rstd);
  rstd.dispose(); // the saved view keeps its memory
  const [sx, sw, sr] = saved;
  return record(
    'rmsNorm',
    out,
    [x, weight],
    (grad) => {
      if (empty) return [wantX ? zerosLike(sx) : null, wantW ? zerosLike(sw) : null];
      const gradX = wantX ? Tensor.empty(sx.shape, device) : undefined;
      const gradWeight = wantW ? Tensor.empty(sw.shape, device) : undefined;
      rmsNormBackwardKernel({ grad, x: sx, weight: sw, rstd: sr, gradX, gradWeight, ...shape });
      return [gradX ?? null, gradWeight ?? null];
    },
    saved,
  );
}

/**
 * LayerNorm over the last dimension with the biased variance:
 * `(x - mean) * rsqrt(var + eps) * weight + bias` (e.g. the vision tower's norm1 / norm2 / ln_q,
 * spec §2.5, §2.6). x [..., H], weight and bias [H].
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = DEFAULT_NORM_EPS): Tensor {
  checkInputs('layerNorm', { x, weight, bias });
  const shape = checkRowParam('layerNorm', x, 'weight', weight);
  checkRowParam('layerNorm', x, 'bias', bias);
  checkEps('layerNorm', eps);
  const device = { device: x.device };
  const out = Tensor.empty(x.shape, device);
  const empty = shape.rows === 0 || shape.hidden === 0;
  const mean = Tensor.empty([shape.rows], device);
  const rstd = Tensor.empty([shape.rows], device);
  if (!empty) layerNormKernel({ x, weight, bias, out, mean, rstd, eps, ...shape });
  if (!isGradEnabled() || !(x.requiresGrad || weight.requiresGrad || bias.requiresGrad)) {
    mean.dispose();
    rstd.dispose();
    return out;
  }
  const wantX = x.requiresGrad;
  const wantW = weight.requiresGrad;
  const wantB = bias.requiresGrad;
  const saved = saveAll(x, weight, mean, rstd);
  mean.dispose();
  rstd.dispose();
  const [sx, sw, sm, sr] = saved;
  return record(
    'layerNorm',
    out,
    [x, weight, bias],
    (grad) => {
      if (empty) {
        return [wantX ? zerosLike(sx) : null, wantW ? zerosLike(sw) : null, wantB ? zerosLike(sw) : null];
      }
      const gradX = wantX ? Tensor.empty(sx.shape, device) : undefined;
      const gradWeight = wantW ? Tensor.empty(sw.shape, device) : undefined;
      const gradBias = wantB ? Tensor.empty(sw.shape, device) : undefined;
      layerNormBackwardKernel({
        grad,
        x: sx,
        weight: sw,
        mean: sm,
        rstd: sr,
        gradX,
        gradWeight,
        gradBias,
        ...shape,
      });
      return [gradX ?? null, gradWeight ?? null, gradBias ?? null];
    },
    saved,
  );
}
