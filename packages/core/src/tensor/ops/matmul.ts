// Matrix products on the native SGEMM: 2-D, batched (leading dimensions), transposes, and the
// Linear layer y = x @ W^T + b.
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { add, sum } from './arithmetic.js';
import { checkInputs } from './checks.js';
import { nativeOp } from './native.js';

const matmulKernel =
  nativeOp<
    (o: {
      a: Tensor;
      b: Tensor;
      out: Tensor;
      m: number;
      n: number;
      k: number;
      batch: number;
      transA: boolean;
      transB: boolean;
      alpha: number;
      beta: number;
      broadcastB: boolean;
    }) => void
  >('matmul');

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/** out = op(a) @ op(b) (+ out when accumulate), batch over leading dims; b may be 2-D (shared). */
function gemm(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const broadcastB = b.rank === 2;
  if (
    k !== kb ||
    (!broadcastB && (b.rank !== a.rank || b.shape.slice(0, -2).some((d, i) => d !== batchShape[i])))
  ) {
    throw new RangeError(
      `matmul: cannot multiply a ${formatShape(a.shape)}${transA ? '^T' : ''} by b ${formatShape(b.shape)}${transB ? '^T' : ''}`,
    );
  }
  // k = 0 is the empty sum: zeros, allocated zeroed on the device (no host array copied over).
  const shape = [...batchShape, m, n];
  const device = { device: a.device };
  const out = k === 0 ? Tensor.zeros(shape, device) : Tensor.empty(shape, device);
  if (m > 0 && n > 0 && k > 0)
    matmulKernel({ a, b, out, m, n, k, batch, transA, transB, alpha: 1, beta: 0, broadcastB });
  return out;
}

/** op(a) @ op(b) for 2-D or batched (same leading dims, or b 2-D and shared by every batch). */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  checkInputs('matmul', { a, b });
  if (a.rank < 2 || b.rank < 2)
    throw new RangeError(
      `matmul: a ${formatShape(a.shape)} and b ${formatShape(b.shape)} must be at least 2-D`,
    );
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  if (transA && b.rank === 2 && a.rank > 2) {
    throw new RangeError('matmul: transA with a batched a and a shared 2-D b is not supported');
  }
  const out = gemm(a, b, transA, transB);
  const [sa, sb] = saveAll(a, b);
  return record(
    'matmul',
    out,
    [a, b],
    (g) => {
      // C = A B: dA = g B^T, dB = A^T g (with the transposes folded in).
      const ga = a.requiresGrad ? (transA ? gemm(sb, g, transB, true) : gemm(g, sb, false, !transB)) : null;
      let gb: Tensor | null = null;
      if (b.requiresGrad) {
        if (b.rank === 2 && a.rank > 2) {
          // Shared b: fold the batch into the rows (transA was ruled out in the forward).
          const a2 = sa.reshape([-1, sa.shape.at(-1)!]);
          const g2 = g.reshape([-1, g.shape.at(-1)!]);
          gb = transB ? gemm(g2, a2, true, false) : gemm(a2, g2, true, false);
        } else {
          gb = transB ? gemm(g, sa, true, transA) : gemm(sa, g, !transA, false);
        }
      }
      return [ga, gb];
    },
    [sa, sb],
  );
}

/** The Linear layer: x [..., in] @ weight [out, in]^T + bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  checkInputs('linear', { x, weight, bias });
  if (weight.rank !== 2 || x.shape.at(-1) !== weight.shape[1]) {
    throw new RangeError(
      `linear: x ${formatShape(x.shape)} does not match weight ${formatShape(weight.shape)} ([out, in])`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new RangeError(
      `linear: bias ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)}`,
    );
  }
  const rows = x.reshape([-1, weight.shape[1]]);
  const y = matmul(rows, weight, { transB: true });
  const out = bias ? add(y, bias) : y;
  return out.reshape([...x.shape.slice(0, -1), weight.shape[0]]);
}

/** Sum over all leading dimensions down to the last one (a bias gradient). */
export function sumRows(x: Tensor): Tensor {
  return sum(x.reshape([-1, x.shape.at(-1)!]), 0);
}
