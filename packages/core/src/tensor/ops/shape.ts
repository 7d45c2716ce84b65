// concat / split / narrow along any axis, as strided block copies (contiguous tensors folded to
// [outer, axis * inner]).
import { formatShape, record, Tensor } from '../tensor.js';
import { checkInputs, normAxis } from './checks.js';
import { nativeOp } from './native.js';

const copy2d =
  nativeOp<
    (o: {
      src: Tensor;
      dst: Tensor;
      rows: number;
      cols: number;
      srcStride: number;
      dstStride: number;
      srcOffset: number;
      dstOffset: number;
    }) => void
  >('copy2d');

function outerInner(shape: readonly number[], axis: number): [number, number] {
  const outer = shape.slice(0, axis).reduce((x, y) => x * y, 1);
  const inner = shape.slice(axis + 1).reduce((x, y) => x * y, 1);
  return [outer, inner];
}

/** Copies `src` into `dst` at `start` along `axis` (shapes equal elsewhere). */
function place(src: Tensor, dst: Tensor, axis: number, start: number): void {
  const [outer, inner] = outerInner(dst.shape, axis);
  const cols = src.shape[axis] * inner;
  if (outer === 0 || cols === 0) return;
  copy2d({
    src,
    dst,
    rows: outer,
    cols,
    srcStride: cols,
    dstStride: dst.shape[axis] * inner,
    srcOffset: 0,
    dstOffset: start * inner,
  });
}

/** Copies the slice [start, start + length) along `axis` out of `src`. */
function take(src: Tensor, axis: number, start: number, length: number): Tensor {
  const shape = src.shape.map((d, i) => (i === axis ? length : d));
  const out = Tensor.empty(shape, { device: src.device });
  const [outer, inner] = outerInner(src.shape, axis);
  const cols = length * inner;
  if (outer > 0 && cols > 0) {
    copy2d({
      src,
      dst: out,
      rows: outer,
      cols,
      srcStride: src.shape[axis] * inner,
      dstStride: cols,
      srcOffset: start * inner,
      dstOffset: 0,
    });
  }
  return out;
}

/** @internal `g` placed at rows [start, start + g.shape[0]) of zeros of `shape` (slice's backward). */
export function padRows(g: Tensor, shape: readonly number[], start: number): Tensor {
  const full = Tensor.zeros(shape, { device: g.device });
  place(g, full, 0, start);
  return full;
}

/** The slice [start, start + length) along `axis`, copied. */
export function narrow(t: Tensor, axis: number, start: number, length: number): Tensor {
  checkInputs('narrow', { t });
  const ax = normAxis('narrow', axis, t.rank);
  if (
    !Number.isInteger(start) ||
    !Number.isInteger(length) ||
    start < 0 ||
    length < 0 ||
    start + length > t.shape[ax]
  ) {
    throw new RangeError(
      `narrow: [${start}, ${start + length}) is outside axis ${ax} of ${formatShape(t.shape)}`,
    );
  }
  const out = take(t, ax, start, length);
  return record('narrow', out, [t], (g) => {
    const full = Tensor.zeros(t.shape, { device: g.device });
    place(g, full, ax, start);
    return [full];
  });
}

/**
 * Writes `src` into `dst` at [start, start + src.shape[axis]) along `axis`, in place (no autograd:
 * for buffers such as a preallocated KV cache). Shapes must match outside `axis`.
 */
export function writeSlice(src: Tensor, dst: Tensor, axis: number, start: number): void {
  checkInputs('writeSlice', { src, dst });
  const ax = normAxis('writeSlice', axis, dst.rank);
  if (src.requiresGrad || dst.requiresGrad)
    throw new Error('writeSlice: an in-place write cannot be differentiated (src or dst requires grad)');
  if (src.rank !== dst.rank || src.shape.some((d, j) => j !== ax && d !== dst.shape[j]))
    throw new RangeError(
      `writeSlice: src ${formatShape(src.shape)} does not match dst ${formatShape(dst.shape)} outside axis ${ax}`,
    );
  if (!Number.isInteger(start) || start < 0 || start + src.shape[ax] > dst.shape[ax])
    throw new RangeError(
      `writeSlice: [${start}, ${start + src.shape[ax]}) is outside axis ${ax} of ${formatShape(dst.shape)}`,
    );
  place(src, dst, ax, start);
}

/** Tensors joined along `axis` (equal shapes elsewhere). */
export function concat(tensors: Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new RangeError('concat: no tensors');
  checkInputs('concat', Object.fromEntries(tensors.map((t, i) => [`tensors[${i}]`, t])));
  const first = tensors[0];
  const ax = normAxis('concat', axis, first.rank);
  tensors.forEach((t, i) => {
    if (t.rank !== first.rank || t.shape.some((d, j) => j !== ax && d !== first.shape[j])) {
      throw new RangeError(
        `concat: tensors[${i}] ${formatShape(t.shape)} does not match tensors[0] ${formatShape(first.shape)} outside axis ${ax}`,
      );
    }
  });
  const total = tensors.reduce((s, t) => s + t.shape[ax], 0);
  const out = Tensor.empty(
    first.shape.map((d, i) => (i === ax ? total : d)),
    { device: first.device },
  );
  const starts: number[] = [];
  let start = 0;
  for (const t of tensors) {
    starts.push(start);
    place(t, out, ax, start);
    start += t.shape[ax];
  }
  return record('concat', out, tensors, (g) =>
    tensors.map((t, i) => (t.requiresGrad ? take(g, ax, starts[i], t.shape[ax]) : null)),
  );
}

/** Pieces of the given sizes along `axis` (copies). */
export function split(t: Tensor, sizes: number[], axis: number): Tensor[] {
  const ax = normAxis('split', axis, t.rank);
  const total = sizes.reduce((s, x) => s + x, 0);
  if (total !== t.shape[ax]) {
    throw new RangeError(
      `split: sizes [${sizes.join(', ')}] add up to ${total}, not axis ${ax} of ${formatShape(t.shape)}`,
    );
  }
  let start = 0;
  return sizes.map((size) => {
    const piece = narrow(t, ax, start, size);
    start += size;
    return piece;
  });
}
