import type { LrSchedulerType } from './types.js';

/**
 * Learning rate at optimizer step `step` (0-based) of `total`: linear warmup over `warmup` steps,
 * then constant, linear decay to 0, or cosine decay to 0 (HF get_*_schedule_with_warmup).
 */
export function learningRateAt(
  step: number,
  total: number,
  base: number,
  type: LrSchedulerType,
  warmup: number,
): number {
  if (warmup > 0 && step < warmup) return (base * step) / warmup;
  if (type === 'constant') return base;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  if (type === 'linear') return base * Math.max(0, 1 - progress);
  return base * 0.5 * (1 + Math.cos(Math.PI * progress));
}
