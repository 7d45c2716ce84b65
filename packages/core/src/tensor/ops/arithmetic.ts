// add / sub / mul with a trailing broadcast, scale, sum / mean over an axis, and the in-place
// helpers the autograd engine uses.
import { record, saveAll, Tensor } from '../tensor.js';
import { checkInputs, normAxis, sameShape } from './checks.js';
import { nativeOp } from './native.js';

type Float = Tensor;
const binaryKernel =
  nativeOp<(o: { op: 'add' | 'sub' | 'mul'; a: Float; b: Float; out: Float }) => void>('binary');
const affineKernel = nativeOp<(o: { a: Float; out: Float; alpha: number; beta: number }) => void>('affine');
const axpyKernel = nativeOp<(o: { x: Float; y: Float; alpha: number }) => void>('axpy');
const sumAxisKernel =
  nativeOp<(o: { x: Float; out: Float; outer: number; axis: number; inner: number; scale: number }) => void>(
    'sumAxis',
  );
const broadcastAxisKernel =
  nativeOp<(o: { g: Float; out: Float; outer: number; axis: number; inner: number; scale: number }) => void>(
    'broadcastAxis',
  );

/** b's shape must be a's, or a suffix of it (b broadcast over a's leading dimensions). */
function checkBroadcast(op: string, a: Tensor, b: Tensor): void {
  checkInputs(op, { a, b });
  const k = b.rank;
  if (k > a.rank || !sameShape(a.shape.slice(a.rank - k), b.shape)) {
    throw new RangeError(
      `${op}: b [${b.shape.join(', ')}] must equal a [${a.shape.join(', ')}] or its trailing dimensions`,
    );
  }
}

/** Sums g over the leading dimensions that `shape` (a trailing suffix of g's) lacks. */
function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.rank === shape.length) return g;
  const inner = shape.reduce((x, y) => x * y, 1);
  const out = Tensor.empty(shape, { device: g.device });
  sumAxisKernel({ x: g, out, outer: 1, axis: g.size / inner, inner, scale: 1 });
  return out;
}

function binary(op: 'add' | 'sub' | 'mul', a: Tensor, b: Tensor): Tensor {
  checkBroadcast(op, a, b);
  const out = Tensor.empty(a.shape, { device: a.device });
  binaryKernel({ op, a, b, out });
  if (op === 'mul') {
    const [sa, sb] = saveAll(a, b);
    return record('mul', out, [a, b], (g) => [mul(g, sb), reduceTo(mul(g, sa), b.shape)], [sa, sb]);
  }
  return record(op, out, [a, b], (g) => [g, reduceTo(op === 'add' ? g : scale(g, -1), b.shape)]);
}

/** a + b (b: a's shape or its trailing dimensions). */
export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', a, b);
}

/** a - b (b: a's shape or its trailing dimensions). */
export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', a, b);
}

/** a * b elementwise (b: a's shape or its trailing dimensions). */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary('mul', a, b);
}

/** alpha * a + beta. */
export function scale(a: Tensor, alpha: number, beta = 0): Tensor {
  checkInputs('scale', { a });
  const out = Tensor.empty(a.shape, { device: a.device });
  affineKernel({ a, out, alpha, beta });
  return record('scale', out, [a], (g) => [scale(g, alpha)]);
}

/** A copy with its own memory. */
export function clone(a: Tensor): Tensor {
  return scale(a, 1);
}

/** In place, no autograd: target += alpha * x (gradient accumulation). */
export function accumulate(target: Tensor, x: Tensor, alpha = 1): void {
  checkInputs('accumulate', { target, x });
  if (!sameShape(target.shape, x.shape)) {
    throw new RangeError(`accumulate: [${x.shape.join(', ')}] into [${target.shape.join(', ')}]`);
  }
  axpyKernel({ x, y: target, alpha });
}

function reduceAxis(op: 'sum' | 'mean', a: Tensor, axis: number, keepDims: boolean): Tensor {
  checkInputs(op, { a });
  const ax = normAxis(op, axis, a.rank);
  const outer = a.shape.slice(0, ax).reduce((x, y) => x * y, 1);
  const inner = a.shape.slice(ax + 1).reduce((x, y) => x * y, 1);
  const n = a.shape[ax];
  const outShape = keepDims ? a.shape.map((d, i) => (i === ax ? 1 : d)) : a.shape.filter((_, i) => i !== ax);
  const out = Tensor.empty(outShape, { device: a.device });
  const s = op === 'mean' ? 1 / n : 1;
  sumAxisKernel({ x: a, out, outer, axis: n, inner, scale: s });
  return record(op, out, [a], (g) => {
    const ga = Tensor.empty(a.shape, { device: a.device });
    broadcastAxisKernel({ g, out: ga, outer, axis: n, inner, scale: s });
    return [ga];
  });
}

/** Sum over one axis. */
export function sum(a: Tensor, axis: number, keepDims = false): Tensor {
  return reduceAxis('sum', a, axis, keepDims);
}

/** Mean over one axis. */
export function mean(a: Tensor, axis: number, keepDims = false): Tensor {
  return reduceAxis('mean', a, axis, keepDims);
}

/** Sum of every element, as a scalar tensor. */
export function sumAll(a: Tensor): Tensor {
  return sum(a.reshape([a.size]), 0);
}
