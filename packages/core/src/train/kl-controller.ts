// The KL weight of a GRPO run, from the config: constant (GRPO), dynamic (GRPO-D, Eq. 3) or
// adaptive (a PPO-style controller on the weight, Ziegler et al. 2019).
import { klSchedule } from '../rl/kl-schedule.js';
import type { KlScheduleSpec } from './types.js';

export interface KlControllerState {
  beta: number;
}

export class KlController {
  private beta: number;
  constructor(private readonly spec: KlScheduleSpec) {
    this.beta = spec.type === 'adaptive' ? spec.initBeta : 0;
  }

  /** beta for optimizer step `step` of `total`. */
  betaAt(step: number, total: number): number {
    const s = this.spec;
    if (s.type === 'constant') return klSchedule.constant(s.beta).betaAt(step, total);
    if (s.type === 'dynamic')
      return klSchedule
        .dynamic({ min: s.betaMin, max: s.betaMax, exploreFraction: s.exploreFraction })
        .betaAt(step, total);
    return this.beta;
  }

  /** Whether beta is 0 for the whole run: the reference model is then never run. */
  isAlwaysZero(): boolean {
    const s = this.spec;
    if (s.type === 'constant') return s.beta === 0;
    if (s.type === 'dynamic') return s.betaMax === 0;
    return s.initBeta === 0;
  }

  /**
   * Adaptive only: after a step with measured KL over `samples` completions,
   * beta *= 1 + clip(kl / target - 1, -0.2, 0.2) * samples / horizon.
   */
  update(kl: number, samples: number): void {
    const s = this.spec;
    if (s.type !== 'adaptive' || !Number.isFinite(kl)) return;
    const error = Math.min(0.2, Math.max(-0.2, kl / s.targetKl - 1));
    this.beta *= 1 + (error * samples) / s.horizon;
  }

  state(): KlControllerState {
    return { beta: this.beta };
  }

  load(state: KlControllerState): void {
    this.beta = state.beta;
  }
}
