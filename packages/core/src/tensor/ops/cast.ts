// Casts between float32 and bfloat16 (the native cast kernel, CPU or CUDA): float32 -> bfloat16
// rounds to nearest even and keeps NaN NaN; bfloat16 -> float32 is exact. Differentiable: the
// gradient is cast back to the input's dtype.
import type { DType } from '../dtype.js';
import { record, Tensor } from '../tensor.js';
import { nativeOp } from './native.js';

const castKernel = nativeOp<(o: { x: Tensor; out: Tensor }) => void>('cast');

export type FloatDType = 'float32' | 'bfloat16';

function isFloatDType(d: DType | string): d is FloatDType {
  return d === 'float32' || d === 'bfloat16';
}

/** t converted to `dtype` (float32 <-> bfloat16) on t's device; t itself when it already has it. */
export function cast(t: Tensor, dtype: FloatDType): Tensor {
  t.assertUsable('cast', 't');
  if (!isFloatDType(dtype))
    throw new TypeError(`cast: dtype must be 'float32' or 'bfloat16' (got ${JSON.stringify(dtype)})`);
  if (!isFloatDType(t.dtype))
    throw new TypeError(`cast: t has dtype ${t.dtype}; cast converts float32 <-> bfloat16`);
  if (t.dtype === dtype) return t;
  const from = t.dtype;
  const out = Tensor.empty(t.shape, { dtype, device: t.device });
  if (t.size > 0) castKernel({ x: t, out });
  return record('cast', out, [t], (g) => [cast(g, from)]);
}
