// Finite-difference gradient checks for tensor ops (used by every op's tests).
import { expectClose, maxAbs, randomNormal, seededRandom } from '@othink/testing';
import { mul, noGrad, sumAll, Tensor, tidy } from '../src/index.js';

export interface GradcheckInput {
  shape: number[];
  /** Values (default: seeded normal samples). */
  data?: Float32Array;
  /** Inputs that are not differentiated (ids, masks): passed as given. */
  constant?: boolean;
  dtype?: 'float32' | 'int32';
}

export interface GradcheckOptions {
  seed?: number;
  /** Finite-difference step. */
  h?: number;
  /**
   * Allowed |analytic - numeric| relative to the largest numeric gradient of that input. The
   * default 5e-3 covers float32 forward passes: rounding of ~1e-7 relative in an O(10) objective,
   * divided by 2h = 2e-2, gives ~1e-4; the central difference's O(h^2) error adds ~1e-4 for smooth ops.
   */
  tol?: number;
  /** Differentiate only these flat indices of each input (default all; large inputs: a sample). */
  indices?: (input: number, size: number) => number[];
}

/**
 * Checks d/dx sum(f(x) * w) from backward() against central differences of the forward, for
 * random weights w. Returns the analytic gradients for further checks.
 */
export function gradcheck(
  f: (...inputs: Tensor[]) => Tensor,
  specs: GradcheckInput[],
  options: GradcheckOptions = {},
): Float32Array[] {
  const rand = seededRandom(options.seed ?? 1);
  const h = options.h ?? 1e-2;
  const tol = options.tol ?? 5e-3;
  const values = specs.map(
    (s) =>
      s.data ??
      randomNormal(
        s.shape.reduce((a, b) => a * b, 1),
        rand,
      ),
  );
  const make = (i: number, data: Float32Array) =>
    specs[i].dtype === 'int32'
      ? Tensor.from(Int32Array.from(data), specs[i].shape, { dtype: 'int32' })
      : Tensor.from(data, specs[i].shape, { requiresGrad: !specs[i].constant });
  const forward = (inputs: Float32Array[]) =>
    tidy(() => noGrad(() => f(...inputs.map((v, i) => make(i, v))).toFloat32Array()));
  const weights = randomNormal(forward(values).length, rand);
  const analytic = tidy(() => {
    const inputs = values.map((v, i) => make(i, v));
    const out = f(...inputs);
    sumAll(mul(out, Tensor.from(weights, out.shape))).backward();
    return inputs.map((t, i) => (specs[i].constant ? new Float32Array(0) : t.grad!.toFloat32Array()));
  });
  // The objective in float64 from the float32 forward.
  const objective = (inputs: Float32Array[]) => {
    const out = forward(inputs);
    let s = 0;
    for (let j = 0; j < out.length; j++) s += out[j] * weights[j];
    return s;
  };
  specs.forEach((spec, i) => {
    if (spec.constant) return;
    const x = values.map((v) => Float32Array.from(v));
    const idx = options.indices?.(i, x[i].length) ?? [...x[i].keys()];
    const numeric = new Float64Array(idx.length);
    idx.forEach((j, k) => {
      const saved = x[i][j];
      x[i][j] = saved + h;
      const up = objective(x);
      x[i][j] = saved - h;
      const down = objective(x);
      x[i][j] = saved;
      numeric[k] = (up - down) / (2 * h);
    });
    const got = idx.map((j) => analytic[i][j]);
    expectClose(
      got,
      numeric,
      { atol: tol * maxAbs(numeric) + 1e-6 },
      `d/d input ${i} ${JSON.stringify(spec.shape)}`,
    );
  });
  return analytic;
}
