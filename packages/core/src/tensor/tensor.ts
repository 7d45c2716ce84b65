import type { NativeStorage } from '@othink/native';
import { type BackwardFn, isGradEnabled, Node } from './autograd.js';
import { runBackward } from './backward.js';
import { bytesPerElement, type Device, type DType, typedArrayFor } from './dtype.js';
import { padRows } from './ops/shape.js';
import { keep, setTensorCheck, track } from './scope.js';
import { StorageRef } from './storage.js';

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function checkShape(shape: Shape, where: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${where}: invalid shape ${formatShape(shape)}`);
  }
}

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

/**
 * An n-dimensional array in native memory with reverse-mode autograd. Always contiguous
 * (row-major); reshape and slices along the first axis are views that share the memory.
 * Free it with dispose() or inside tidy(); a finalizer frees what JS forgot, eventually.
 */
export class Tensor {
  /** The native memory (shared with views); what the kernels read. */
  readonly storage: NativeStorage;
  /** Gradient accumulated by backward() (leaf tensors that require grad). */
  grad: Tensor | null = null;
  /** The node that produced this tensor, when it was computed from tensors requiring grad. */
  gradFn: Node | null = null;
  requiresGrad: boolean;
  readonly size: number;
  private disposed = false;

  private constructor(
    readonly shape: Shape,
    readonly dtype: DType,
    private readonly ref: StorageRef,
    /** Offset of the first element in the storage, in elements. */
    readonly offset: number,
    requiresGrad: boolean,
  ) {
    this.storage = ref.native;
    this.size = shapeSize(shape);
    this.requiresGrad = requiresGrad;
    track(this);
  }

  get device(): Device {
    return this.storage.device;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Uninitialised memory (for op outputs that write every element). */
  static empty(shape: Shape, options: TensorOptions = {}): Tensor {
    checkShape(shape, 'Tensor.empty');
    const dtype = options.dtype ?? 'float32';
    const ref = StorageRef.allocate(
      shapeSize(shape) * bytesPerElement[dtype],
      options.device ?? 'cpu',
      false,
    );
    return new Tensor([...shape], dtype, ref, 0, options.requiresGrad ?? false);
  }

  static zeros(shape: Shape, options: TensorOptions = {}): Tensor {
    checkShape(shape, 'Tensor.zeros');
    const dtype = options.dtype ?? 'float32';
    const ref = StorageRef.allocate(shapeSize(shape) * bytesPerElement[dtype], options.device ?? 'cpu', true);
    return new Tensor([...shape], dtype, ref, 0, options.requiresGrad ?? false);
  }

  /** A tensor holding a copy of `data` (a typed array of the dtype, or numbers). */
  static from(data: ArrayLike<number>, shape: Shape, options: TensorOptions = {}): Tensor {
    checkShape(shape, 'Tensor.from');
    const dtype = options.dtype ?? (data instanceof Int32Array ? 'int32' : 'float32');
    if (data.length !== shapeSize(shape)) {
      throw new RangeError(
        `Tensor.from: ${data.length} values do not fill shape ${formatShape(shape)} (${shapeSize(shape)} elements)`,
      );
    }
    const t = Tensor.empty(shape, { dtype, device: options.device, requiresGrad: options.requiresGrad });
    const typed = typedArrayFor(dtype, data.length);
    if (dtype === 'int32') {
      for (let i = 0; i < data.length; i++) {
        if (!Number.isInteger(data[i]))
          throw new RangeError(`Tensor.from: int32 value ${data[i]} at [${i}] is not an integer`);
      }
    }
    typed.set(data as ArrayLike<number>);
    t.storage.write(typed, 0);
    return t;
  }

  /** Scalar tensor. */
  static scalar(value: number, options: TensorOptions = {}): Tensor {
    return Tensor.from([value], [], options); // device: the caller's options (default cpu)
  }

  /** A copy of the values as a typed array. */
  toTypedArray(): Float32Array | Int32Array | Uint16Array {
    this.assertUsable('toTypedArray');
    const out = typedArrayFor(this.dtype, this.size);
    this.storage.read(out, this.offset * bytesPerElement[this.dtype]);
    return out;
  }

  /** A copy of the values as a Float32Array (float32 tensors). */
  toFloat32Array(): Float32Array {
    if (this.dtype !== 'float32') throw new TypeError(`toFloat32Array: tensor has dtype ${this.dtype}`);
    return this.toTypedArray() as Float32Array;
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new RangeError(`item: tensor ${formatShape(this.shape)} has ${this.size} elements, not 1`);
    return this.toTypedArray()[0];
  }

  /** A view with another shape over the same memory (one dimension may be -1). */
  reshape(shape: Shape): Tensor {
    this.assertUsable('reshape');
    const inferred = [...shape];
    const unknown = inferred.indexOf(-1);
    if (unknown >= 0) {
      const rest = shapeSize(inferred.filter((_, i) => i !== unknown));
      inferred[unknown] = rest === 0 ? 0 : this.size / rest;
    }
    checkShape(inferred, 'reshape');
    if (shapeSize(inferred) !== this.size) {
      throw new RangeError(
        `reshape: cannot view ${formatShape(this.shape)} (${this.size} elements) as ${formatShape(shape)}`,
      );
    }
    const view = this.view(inferred, this.offset);
    return record('reshape', view, [this], (g) => [g.reshape(this.shape)]);
  }

  /** A view of rows start..end-1 along the first axis. */
  slice(start: number, end: number): Tensor {
    this.assertUsable('slice');
    const rows = this.shape[0];
    if (
      this.rank === 0 ||
      !Number.isInteger(start) ||
      !Number.isInteger(end) ||
      start < 0 ||
      end > rows ||
      start > end
    ) {
      throw new RangeError(
        `slice: [${start}, ${end}) is not a range of the first axis of ${formatShape(this.shape)}`,
      );
    }
    const inner = this.size / rows;
    const shape = [end - start, ...this.shape.slice(1)];
    const view = this.view(shape, this.offset + start * inner);
    return record('slice', view, [this], (g) => [padRows(g, this.shape, start)]);
  }

  /**
   * This tensor on `device`: a copy (with autograd: the gradient is copied back), or, when it is
   * already there, a view of the same memory. GPU work is queued in call order on one stream, so
   * the copy sees every op before it, and reading a tensor back waits for the work queued on it.
   */
  to(device: Device): Tensor {
    this.assertUsable('to');
    if (device !== 'cpu' && device !== 'cuda')
      throw new TypeError(`to: device must be 'cpu' or 'cuda' (got ${device})`);
    const source = this.device;
    if (device === source) {
      return record('to', this.view(this.shape, this.offset), [this], (g) => [g]);
    }
    const out = Tensor.empty(this.shape, { dtype: this.dtype, device });
    const bytes = bytesPerElement[this.dtype];
    out.storage.copyFrom(this.storage, this.offset * bytes, 0, this.size * bytes);
    return record('to', out, [this], (g) => [g.to(source)]);
  }

  /** A view that shares memory but not the graph. */
  detach(): Tensor {
    this.assertUsable('detach');
    return this.view(this.shape, this.offset);
  }

  /** Frees this handle; the memory goes when no view or saved activation needs it. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ref.release();
  }

  /** Backpropagates from this tensor (a scalar, unless `grad` is given) into every leaf's `.grad`. */
  backward(grad?: Tensor, options: { retainGraph?: boolean } = {}): void {
    runBackward(this, grad, options.retainGraph ?? false);
  }

  /** Frees and clears `.grad`. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  /** Throws a readable error when the tensor cannot be read (disposed). */
  assertUsable(op: string, name = 'tensor'): void {
    if (this.disposed) throw new Error(`${op}: ${name} (${this.describe()}) was disposed`);
  }

  describe(): string {
    return `Tensor ${formatShape(this.shape)} ${this.dtype} ${this.device}`;
  }

  toString(): string {
    return this.describe();
  }

  /** @internal A new handle over this tensor's memory (retains it). */
  view(shape: Shape, offset: number): Tensor {
    return new Tensor([...shape], this.dtype, this.ref.retain(), offset, false);
  }

  /** @internal Whether another tensor shares this memory (in-place writes would be visible). */
  get sharesMemory(): boolean {
    return this.ref.shared;
  }
}

setTensorCheck((v: unknown): v is Tensor => v instanceof Tensor);

/** @internal A hidden view kept by an autograd node until backward (not owned by any scope). */
function saveForBackward(t: Tensor): Tensor {
  return keep(t.view(t.shape, t.offset));
}

/**
 * @internal Records `out = op(inputs)` on the tape when grad is enabled and an input requires it.
 * `backward` gets d loss / d out and returns one gradient per input (null: none). Tensors it reads
 * must be listed in `save` (call `saved(t)` inside to get their retained views) so they outlive
 * tidy() and dispose() until backward has run.
 */
export function record(
  name: string,
  out: Tensor,
  inputs: (Tensor | null)[],
  backward: BackwardFn,
  save: Tensor[] = [],
): Tensor {
  if (!isGradEnabled()) return out; // saveAll handed back the tensors themselves: nothing to free
  if (!inputs.some((t) => t?.requiresGrad)) {
    for (const t of save) t.dispose(); // views from saveAll that no node will own
    return out;
  }
  out.requiresGrad = true;
  out.gradFn = new Node(
    name,
    inputs.map((t) => (t?.requiresGrad ? t : null)),
    backward,
    save,
  );
  return out;
}

/** @internal Retained views for record()'s `save` list. */
export function saveAll(...tensors: Tensor[]): Tensor[] {
  // Under noGrad nothing is recorded: no views, nothing to free later.
  if (!isGradEnabled()) return tensors;
  return tensors.map(saveForBackward);
}
