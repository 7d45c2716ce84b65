/** Element types: float32 everywhere, int32 for ids and positions, bfloat16 storage on CUDA. */
export type DType = 'float32' | 'int32' | 'bfloat16';
export type Device = 'cpu' | 'cuda';

export const bytesPerElement: Record<DType, number> = { float32: 4, int32: 4, bfloat16: 2 };

/** The typed array that holds a dtype's values on the JS side. */
export type TypedArrayOf<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : Uint16Array;

export function typedArrayFor(dtype: DType, length: number): Float32Array | Int32Array | Uint16Array {
  if (dtype === 'float32') return new Float32Array(length);
  if (dtype === 'int32') return new Int32Array(length);
  return new Uint16Array(length);
}
