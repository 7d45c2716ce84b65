// Tensor-likes ({ storage, offset, size, dtype }) over native Storage for the kernel tests: the form
// in which @othink/core hands tensors to the bindings, on the CPU or (CUDA builds) on the GPU.
import { type NativeStorage, Storage, type TensorLike } from '../index.js';

export type Device = 'cpu' | 'cuda';
type Data = Float32Array | Int32Array | Uint16Array;
type DType = TensorLike['dtype'];

/** Storages made by one test, freed together. */
export class Arena {
  private readonly storages: NativeStorage[] = [];

  constructor(private readonly device: Device) {}

  /**
   * A tensor holding `data`, `offset` elements into its storage (an offset moves every row off the
   * storage's 256-byte alignment, as a view does).
   */
  tensor(data: Data, dtype: DType = dtypeOf(data), offset = 0): TensorLike {
    const bytes = data.BYTES_PER_ELEMENT;
    const storage = this.keep(new Storage((offset + data.length) * bytes, this.device, true));
    storage.write(data, offset * bytes);
    return { storage, offset, size: data.length, dtype };
  }

  /** A zero-filled float32 (or bfloat16) tensor of n elements. */
  zeros(n: number, dtype: DType = 'float32', offset = 0): TensorLike {
    const bytes = dtype === 'bfloat16' ? 2 : 4;
    const storage = this.keep(new Storage((offset + n) * bytes, this.device, true));
    return { storage, offset, size: n, dtype };
  }

  dispose(): void {
    for (const s of this.storages.splice(0)) s.dispose();
  }

  private keep(s: NativeStorage): NativeStorage {
    this.storages.push(s);
    return s;
  }
}

function dtypeOf(data: Data): DType {
  return data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : 'bfloat16';
}

/** A float32 tensor's values (waits for the device's queued work). */
export function readF32(t: TensorLike): Float32Array {
  const out = new Float32Array(t.size);
  t.storage.read(out, t.offset * 4);
  return out;
}

/** A bfloat16 tensor's values, widened exactly to float32. */
export function readBf16(t: TensorLike): Float32Array {
  const bits = new Uint16Array(t.size);
  t.storage.read(bits, t.offset * 2);
  return fromBf16(bits);
}

/** Rounds float32 to bfloat16 (nearest even; finite inputs): the raw bits and their exact float32 values. */
export function toBf16(x: Float32Array): { bits: Uint16Array; values: Float32Array } {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const bits = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) bits[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) & 0xffff;
  return { bits, values: fromBf16(bits) };
}

export function fromBf16(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}
