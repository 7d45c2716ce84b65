/**
 * The KL weight beta as a function of the optimizer step: constant (GRPO) or the OThink-MR1
 * dynamic schedule (GRPO-D, the paper's Eq. 3).
 */
export interface KlSchedule {
  readonly kind: string;
  /** beta at global optimizer step `step` (0-based) of a run of `totalSteps` steps. */
  betaAt(step: number, totalSteps: number): number;
  /** Whether beta is 0 for the whole run (then the reference model need not run at all). */
  isAlwaysZero(): boolean;
}

export interface DynamicKlOptions {
  /** beta_min, reached at the end of exploration (w = exploreFraction * t). */
  min: number;
  /** beta_max, reached at the last step t. */
  max: number;
  /** w / t; the paper uses 0.3 for both tasks. */
  exploreFraction?: number;
}

function checkStep(step: number, totalSteps: number): void {
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new RangeError(`klSchedule: totalSteps must be a positive integer (got ${totalSteps})`);
  }
  if (!Number.isInteger(step) || step < 0) {
    throw new RangeError(`klSchedule: step must be a non-negative integer (got ${step})`);
  }
}

function constant(beta: number): KlSchedule {
  if (!Number.isFinite(beta) || beta < 0)
    throw new RangeError(`klSchedule.constant: beta must be >= 0 (got ${beta})`);
  return {
    kind: 'constant',
    betaAt(step, totalSteps) {
      checkStep(step, totalSteps);
      return beta;
    },
    isAlwaysZero: () => beta === 0,
  };
}

/**
 * GRPO-D (OThink-MR1 Eq. 3): a V shape that explores early and exploits late.
 *   beta(s) = beta_mid - (beta_mid - beta_min) * s / w               for s <= w
 *   beta(s) = beta_min + (beta_max - beta_min) * (s - w) / (t - w)   for w < s <= t
 * with beta_mid = (beta_min + beta_max) / 2 and w = exploreFraction * t, not rounded.
 * Steps past t (a resumed run that was extended) keep beta_max.
 */
function dynamic({ min, max, exploreFraction = 0.3 }: DynamicKlOptions): KlSchedule {
  if (!(Number.isFinite(min) && Number.isFinite(max) && min >= 0 && max >= min)) {
    throw new RangeError(`klSchedule.dynamic: need 0 <= min <= max (got min ${min}, max ${max})`);
  }
  if (!(exploreFraction > 0 && exploreFraction < 1)) {
    throw new RangeError(`klSchedule.dynamic: exploreFraction must be in (0, 1) (got ${exploreFraction})`);
  }
  const mid = (min + max) / 2;
  return {
    kind: 'dynamic',
    betaAt(step, totalSteps) {
      checkStep(step, totalSteps);
      const w = exploreFraction * totalSteps;
      if (step <= w) return mid - (mid - min) * (step / w);
      if (step >= totalSteps) return max;
      return min + ((max - min) * (step - w)) / (totalSteps - w);
    },
    isAlwaysZero: () => max === 0,
  };
}

/** The paper's presets (section 4): counting [0.04, 0.1], geometry [0.0, 0.02], w / t = 0.3. */
const presets = {
  counting: () => dynamic({ min: 0.04, max: 0.1, exploreFraction: 0.3 }),
  geometry: () => dynamic({ min: 0.0, max: 0.02, exploreFraction: 0.3 }),
};

export const klSchedule = { constant, dynamic, presets };
