// Rotary position embedding, half-split ("rotate_half") convention of Qwen2-VL:
//   out = x * cos + rotate_half(x) * sin,   rotate_half(x) = [-x2, x1]  (x1, x2 the halves of D).
// One op serves the LLM's M-RoPE (spec §3.5) and the vision tower's 2-D RoPE (spec §2.4): they
// differ only in the per-position cos / sin tables, built by model/rope-tables.ts.
import { isGradEnabled } from '../autograd.js';
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { checkInputs, sameShape } from './checks.js';
import { nativeOp } from './native.js';

interface RotaryKernelOptions {
  cos: Tensor;
  sin: Tensor;
  out: Tensor;
  rows: number;
  heads: number;
  dim: number;
}
const rotaryKernel = nativeOp<(o: RotaryKernelOptions & { x: Tensor }) => void>('rotary');
const rotaryBackwardKernel = nativeOp<(o: RotaryKernelOptions & { grad: Tensor }) => void>('rotaryBackward');

/**
 * Rotates x [..., heads, D] by the tables cos / sin [..., D] (one row per position, shared by the
 * heads; the leading dimensions equal x's, e.g. x [B, S, H, D] with tables [B, S, D], or vision
 * x [N, H, D] with tables [N, D]). D must be even.
 *
 * Runs on x's device (the tables must be there too).
 *
 * Gradient: to x only (the transpose of the rotation, i.e. the rotation by -sin for RoPE tables).
 * The tables are constants (position ids carry no gradient, spec §8.10).
 */
export function rotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  checkInputs('rotary', { x, cos, sin });
  if (x.rank < 2) throw new RangeError(`rotary: x ${formatShape(x.shape)} must be [..., heads, dim]`);
  const dim = x.shape[x.rank - 1];
  const heads = x.shape[x.rank - 2];
  const tableShape = [...x.shape.slice(0, -2), dim];
  if (!sameShape(cos.shape, tableShape) || !sameShape(sin.shape, tableShape)) {
    throw new RangeError(
      `rotary: cos ${formatShape(cos.shape)} and sin ${formatShape(sin.shape)} must be ${formatShape(tableShape)} ` +
        `for x ${formatShape(x.shape)} (x's leading dimensions, then its last)`,
    );
  }
  if (dim % 2 !== 0)
    throw new RangeError(`rotary: the last dimension of x ${formatShape(x.shape)} must be even`);
  const out = Tensor.empty(x.shape, { device: x.device });
  const rows = heads * dim === 0 ? 0 : x.size / (heads * dim);
  const sizes = { rows, heads, dim };
  if (x.size > 0) rotaryKernel({ x, cos, sin, out, ...sizes });
  // Saved views are taken only when the graph is recorded (they would outlive tidy otherwise).
  if (!isGradEnabled() || !x.requiresGrad) return out;
  const [sc, ss] = saveAll(cos, sin);
  return record(
    'rotary',
    out,
    [x],
    (g) => {
      const dx = Tensor.empty(x.shape, { device: x.device });
      if (x.size > 0) rotaryBackwardKernel({ grad: g, cos: sc, sin: ss, out: dx, ...sizes });
      return [dx];
    },
    [sc, ss],
  );
}
