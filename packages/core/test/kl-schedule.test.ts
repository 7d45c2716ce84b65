import { readFileSync } from 'node:fs';
import { expectClose, fixturePath } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { klSchedule } from '../src/index.js';

interface ScheduleFixture {
  schedules: {
    beta_min: number;
    beta_max: number;
    total_steps: number;
    explore_frac: number;
    betas: number[];
  }[];
}

describe('klSchedule', () => {
  const fixture = JSON.parse(readFileSync(fixturePath('grpo/beta_schedule.json'), 'utf8')) as ScheduleFixture;

  for (const s of fixture.schedules) {
    it(`dynamic [${s.beta_min}, ${s.beta_max}] over ${s.total_steps} steps matches the fixture (Eq. 3)`, () => {
      const schedule = klSchedule.dynamic({
        min: s.beta_min,
        max: s.beta_max,
        exploreFraction: s.explore_frac,
      });
      const betas = s.betas.map((_, step) => schedule.betaAt(step, s.total_steps));
      expectClose(betas, s.betas, { atol: 1e-12 }, 'betas');
    });
  }

  it('presets follow the paper: counting 0.07 -> 0.04 at 0.3t -> 0.1; geometry 0.01 -> 0 -> 0.02', () => {
    const c = klSchedule.presets.counting();
    expect([0, 30, 100].map((s) => c.betaAt(s, 100))).toEqual([0.07, 0.04, 0.1]);
    const g = klSchedule.presets.geometry();
    expect([0, 30, 100].map((s) => g.betaAt(s, 100))).toEqual([0.01, 0, 0.02]);
    expect(g.isAlwaysZero()).toBe(false);
  });

  it('constant, and the reference model can be skipped only when beta is 0 for the whole run', () => {
    expect(klSchedule.constant(0.04).betaAt(17, 100)).toBe(0.04);
    expect(klSchedule.constant(0).isAlwaysZero()).toBe(true);
    expect(klSchedule.dynamic({ min: 0, max: 0 }).isAlwaysZero()).toBe(true);
  });

  it('steps past the end keep beta_max; bad arguments are errors', () => {
    expect(klSchedule.presets.counting().betaAt(150, 100)).toBe(0.1);
    expect(() => klSchedule.dynamic({ min: 0.1, max: 0.04 })).toThrow(/need 0 <= min <= max/);
    expect(() => klSchedule.dynamic({ min: 0, max: 0.1, exploreFraction: 1 })).toThrow(
      /exploreFraction must be in \(0, 1\)/,
    );
    expect(() => klSchedule.constant(-1)).toThrow(/beta must be >= 0/);
    expect(() => klSchedule.constant(0.1).betaAt(-1, 10)).toThrow(/step must be a non-negative integer/);
    expect(() => klSchedule.constant(0.1).betaAt(1, 0)).toThrow(/totalSteps must be a positive integer/);
  });
});
