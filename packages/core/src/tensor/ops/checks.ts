// Argument checks shared by the ops: errors say which op, which argument and both shapes.
import { formatShape, type Shape, type Tensor } from '../tensor.js';

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Every tensor usable, float32 (unless stated) and on one device. */
export function checkInputs(
  op: string,
  inputs: Record<string, Tensor | null | undefined>,
  dtype = 'float32',
): void {
  let device: string | undefined;
  let first = '';
  for (const [name, t] of Object.entries(inputs)) {
    if (!t) continue;
    t.assertUsable(op, name);
    if (t.dtype !== dtype) throw new TypeError(`${op}: ${name} has dtype ${t.dtype}, expected ${dtype}`);
    if (device === undefined) {
      device = t.device;
      first = name;
    } else if (t.device !== device) {
      throw new Error(`${op}: ${first} is on ${device} but ${name} is on ${t.device}`);
    }
  }
}

export function checkSameShape(op: string, aName: string, a: Tensor, bName: string, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new RangeError(
      `${op}: ${aName} ${formatShape(a.shape)} and ${bName} ${formatShape(b.shape)} must have the same shape`,
    );
  }
}

/** A tensor's size as [rows, cols] with cols = its last dimension. */
export function rowsCols(t: Tensor): [number, number] {
  const cols = t.shape.at(-1) ?? 1;
  return [cols === 0 ? 0 : t.size / cols, cols];
}

/** Normalises a possibly negative axis. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank)
    throw new RangeError(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}
