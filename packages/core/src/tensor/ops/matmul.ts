// Matrix products on the native GEMM: 2-D, batched (leading dimensions), transposes, and the
// Linear layer y = x @ W^T + b. float32 (true float32 on CUDA, no TF32) or bfloat16 (tensor cores
// on CUDA; the CPU's reference twin widens to float32): float32 accumulation either way, a
// bfloat16 result rounded once.
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { add, sum } from './arithmetic.js';
import { cast, type FloatDType } from './cast.js';
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
  /**
   * The result's dtype: by default the inputs'. bfloat16 inputs may ask for a float32 result (the
   * float32 accumulator, unrounded); float32 inputs give float32 only.
   */
  outDtype?: FloatDType;
}

/** a and b in one float dtype on one device (mixed float32 x bfloat16 is an error naming both). */
function checkGemmInputs(op: string, names: [string, string], a: Tensor, b: Tensor): FloatDType {
  const dtype = a.dtype;
  if (dtype !== 'float32' && dtype !== 'bfloat16')
    throw new TypeError(`${op}: ${names[0]} has dtype ${dtype}, expected float32 or bfloat16`);
  if (b.dtype !== dtype) {
    throw new TypeError(
      `${op}: ${names[0]} is ${dtype} but ${names[1]} is ${b.dtype}; give both in one dtype (cast one of them)`,
    );
  }
  checkInputs(op, { [names[0]]: a, [names[1]]: b }, dtype);
  return dtype;
}

/** op(a) @ op(b) in outDtype, batch over leading dims; b may be 2-D (shared). */
function gemm(
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  outDtype: FloatDType = a.dtype as FloatDType,
): Tensor {
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
  const out =
    k === 0
      ? Tensor.zeros(shape, { device: a.device, dtype: outDtype })
      : Tensor.empty(shape, { device: a.device, dtype: outDtype });
  if (m > 0 && n > 0 && k > 0)
    matmulKernel({ a, b, out, m, n, k, batch, transA, transB, alpha: 1, beta: 0, broadcastB });
  return out;
}

/**
 * op(a) @ op(b) for 2-D or batched (same leading dims, or b 2-D and shared by every batch). a and b
 * are both float32 or both bfloat16; the gradients come in the inputs' dtype.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const dtype = checkGemmInputs('matmul', ['a', 'b'], a, b);
  if (a.rank < 2 || b.rank < 2)
    throw new RangeError(
      `matmul: a ${formatShape(a.shape)} and b ${formatShape(b.shape)} must be at least 2-D`,
    );
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const outDtype = options.outDtype ?? dtype;
  if (outDtype !== 'float32' && outDtype !== 'bfloat16')
    throw new TypeError(`matmul: outDtype must be 'float32' or 'bfloat16' (got ${JSON.stringify(outDtype)})`);
  if (dtype === 'float32' && outDtype === 'bfloat16')
    throw new TypeError(
      "matmul: outDtype 'bfloat16' needs bfloat16 a and b (a and b are float32; cast them first)",
    );
  if (transA && b.rank === 2 && a.rank > 2) {
    throw new RangeError('matmul: transA with a batched a and a shared 2-D b is not supported');
  }
  const out = gemm(a, b, transA, transB, outDtype);
  const [sa, sb] = saveAll(a, b);
  return record(
    'matmul',
    out,
    [a, b],
    (gOut) => {
      // The GEMM takes one input dtype: a float32 gradient of a bfloat16 product (outDtype
      // 'float32', or a float32 seed) is rounded to bfloat16 once, as the gradient of a bfloat16
      // output would have been; the input gradients then come out in bfloat16.
      const g = cast(gOut, dtype);
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

/**
 * The Linear layer: x [..., in] @ weight [out, in]^T + bias [out], all float32 or all bfloat16.
 * In bfloat16 the bias is added to the float32 accumulator and the sum rounded to bfloat16 once
 * (there is no bfloat16 add kernel yet; this also keeps the result one rounding from exact).
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const dtype = checkGemmInputs('linear', ['x', 'weight'], x, weight);
  if (bias) {
    if (bias.dtype !== dtype)
      throw new TypeError(`linear: x is ${dtype} but bias is ${bias.dtype}; give all three in one dtype`);
    checkInputs('linear', { x, bias }, dtype);
  }
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
  // A 2-D x is used as it is: a reshape view in between would hand x's gradient over as a view,
  // which backward copies with the float32-only clone (bf16 leaves could not take it).
  const rows = x.rank === 2 ? x : x.reshape([-1, weight.shape[1]]);
  let out: Tensor;
  if (!bias) out = matmul(rows, weight, { transB: true });
  else if (dtype === 'float32') out = add(matmul(rows, weight, { transB: true }), bias);
  else
    out = cast(
      add(matmul(rows, weight, { transB: true, outDtype: 'float32' }), cast(bias, 'float32')),
      'bfloat16',
    );
  return x.rank === 2 ? out : out.reshape([...x.shape.slice(0, -1), weight.shape[0]]);
}

/** Sum over all leading dimensions down to the last one (a bias gradient). */
export function sumRows(x: Tensor): Tensor {
  return sum(x.reshape([-1, x.shape.at(-1)!]), 0);
}
