// Tolerance checks that report where and by how much two arrays differ.
type Numeric = ArrayLike<number>;

export interface Tolerance {
  /** Absolute tolerance. */
  atol?: number;
  /** Relative tolerance (times |expected|). */
  rtol?: number;
}

export interface Mismatch {
  index: number;
  actual: number;
  expected: number;
  diff: number;
}

/** Largest |a - b| and where it occurs. */
export function maxAbsDiff(actual: Numeric, expected: Numeric): Mismatch {
  if (actual.length !== expected.length)
    throw new Error(`length ${actual.length} != expected ${expected.length}`);
  let worst: Mismatch = { index: -1, actual: 0, expected: 0, diff: 0 };
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= worst.diff)) worst = { index: i, actual: actual[i], expected: expected[i], diff };
  }
  return worst;
}

/** Largest |x|. */
export function maxAbs(x: Numeric): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/**
 * Throws unless |actual - expected| <= atol + rtol * |expected| everywhere (NaN never passes).
 * The message names the array, the worst index and both values.
 */
export function expectClose(actual: Numeric, expected: Numeric, tol: Tolerance, name = 'array'): void {
  const atol = tol.atol ?? 0;
  const rtol = tol.rtol ?? 0;
  if (actual.length !== expected.length) {
    throw new Error(`${name}: length ${actual.length}, expected ${expected.length}`);
  }
  let failures = 0;
  let worst: Mismatch | undefined;
  let worstExcess = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    const bound = atol + rtol * Math.abs(expected[i]);
    const excess = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff - bound;
    if (excess > 0) failures++;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = { index: i, actual: actual[i], expected: expected[i], diff };
    }
  }
  if (failures > 0 && worst) {
    throw new Error(
      `${name}: ${failures} of ${actual.length} elements outside atol=${atol}, rtol=${rtol}; ` +
        `worst at [${worst.index}]: ${worst.actual} vs ${worst.expected} (|diff| ${worst.diff.toExponential(3)})`,
    );
  }
}

/** Throws unless the scalar is within atol + rtol * |expected|. */
export function expectScalarClose(actual: number, expected: number, tol: Tolerance, name = 'value'): void {
  expectClose([actual], [expected], tol, name);
}
