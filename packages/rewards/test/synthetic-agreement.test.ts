import { describe, expect, it } from 'vitest';
import {
  countingAccuracy,
  formatReward,
  mathAccuracy,
  paperReward,
  type RewardContext,
} from '../src/index.js';

// Agreement between the rewards and the answer formats of the R1-V data and the paper's Fig. 2:
// counts wrapped as `<answer> 3 </answer>`, angles `70°`, lengths `3cm` / `2.5cm`, plain integers and
// decimals, choice letters, surds. generator-agreement.test.ts checks the rewards against
// @othink/data's own generators; this table covers the wider set of formats a policy may write.

/** Deterministic LCG so the table is the same every run. */
function rng(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return Math.floor(state / 65536) % n;
  };
}

interface Synthetic {
  solution: string;
  /** How a policy may write the correct answer. */
  right: string[];
  /** Wrong answers of the same shape. */
  wrong: string[];
}

function countingSamples(n: number): Synthetic[] {
  const random = rng(7);
  return Array.from({ length: n }, () => {
    const count = 1 + random(10);
    const other = 1 + ((count + random(9)) % 10);
    return {
      solution: `<answer> ${count} </answer>`,
      right: [`${count}`, ` ${count} `, `\n${count}\n`],
      wrong: [`${other === count ? count + 1 : other}`, `${count + 10}`],
    };
  });
}

function geometrySamples(n: number): Synthetic[] {
  const random = rng(11);
  const make = (): Synthetic => {
    switch (random(6)) {
      case 0: {
        const angle = 5 * (2 + random(33));
        return {
          solution: `<answer>${angle}°</answer>`,
          right: [`${angle}°`, `${angle} degrees`, `${angle}^\\circ`, `${angle}`, `∠ABC = ${angle}°`],
          wrong: [`${angle + 5}°`, `${180 - angle === angle ? angle + 10 : 180 - angle}°`, `${angle}cm`],
        };
      }
      case 1: {
        const half = (2 + random(19)) / 2;
        return {
          solution: `<answer>${half}cm</answer>`,
          right: [`${half}cm`, `${half} cm`, `${half}`, `\\frac{${2 * half}}{2}cm`],
          wrong: [`${half + 0.5}cm`, `${2 * half}cm`, `${half}°`],
        };
      }
      case 2: {
        const side = 2 + random(19);
        const area = (side * (side + 1)) / 2;
        return {
          solution: `<answer>${area}</answer>`,
          right: [`${area}`, `${area}.0`, `\\boxed{${area}}`],
          wrong: [`${area + 1}`, `${side * (side + 1)}`],
        };
      }
      case 3: {
        const letter = 'ABCD'[random(4)]!;
        const other = 'ABCD'[('ABCD'.indexOf(letter) + 1 + random(3)) % 4]!;
        return {
          solution: `<answer>${letter}</answer>`,
          right: [letter, `(${letter})`, `${letter}.`],
          wrong: [other, `(${other})`],
        };
      }
      case 4: {
        const k = 2 + random(8);
        return {
          solution: `<answer>${k}√2</answer>`,
          right: [`${k}√2`, `${k}\\sqrt{2}`, `\\sqrt{${2 * k * k}}`],
          wrong: [`${k}√3`, `${k + 1}√2`, `${k * 1.41}`],
        };
      }
      default: {
        const [p, q] = [1 + random(4), 5 + random(4)];
        return {
          solution: `<answer>\\frac{${p}}{${q}}</answer>`,
          right: [`\\frac{${p}}{${q}}`, `${p}/${q}`, `${p / q}`],
          wrong: [`\\frac{${q}}{${p}}`, `${p}/${q + 1}`],
        };
      }
    }
  };
  return Array.from({ length: n }, make);
}

const context = (solution: string, index: number): RewardContext => ({
  prompt: 'question',
  sample: { solution },
  index,
});
const completion = (answer: string): string => `<think>Reasoning.</think>\n<answer>${answer}</answer>`;

describe('rewards agree with the synthetic tasks ground truth', () => {
  it('counting: 300 samples', async () => {
    const samples = countingSamples(300);
    for (const [i, { solution, right, wrong }] of samples.entries()) {
      for (const answer of right) {
        expect(await countingAccuracy(completion(answer), context(solution, i)), answer).toBe(1);
        expect(await mathAccuracy(completion(answer), context(solution, i)), answer).toBe(1);
      }
      for (const answer of wrong) {
        expect(await countingAccuracy(completion(answer), context(solution, i)), answer).toBe(0);
        expect(await mathAccuracy(completion(answer), context(solution, i)), answer).toBe(0);
      }
    }
    // Every count 1..10 occurs.
    expect(new Set(samples.map((s) => s.solution)).size).toBe(10);
  });

  it('geometry: 300 samples', async () => {
    const samples = geometrySamples(300);
    for (const [i, { solution, right, wrong }] of samples.entries()) {
      for (const answer of right) {
        expect(await mathAccuracy(completion(answer), context(solution, i)), `${answer} vs ${solution}`).toBe(
          1,
        );
      }
      for (const answer of wrong) {
        expect(await mathAccuracy(completion(answer), context(solution, i)), `${answer} vs ${solution}`).toBe(
          0,
        );
      }
    }
    // All six answer kinds occur.
    const kinds = new Set(samples.map((s) => s.solution.replace(/[0-9.]+/g, 'n').replace(/>[A-D]</, '>L<')));
    expect(kinds.size).toBeGreaterThanOrEqual(6);
  });

  it('a correct, well-formatted completion scores R = 2 and a wrong one 1', async () => {
    const samples = [...countingSamples(50), ...geometrySamples(50)];
    const completions = samples.flatMap((s) => [completion(s.right[0]!), completion(s.wrong[0]!)]);
    const batch = await paperReward().score({
      completions,
      samples: samples.flatMap((s) => [{ solution: s.solution }, { solution: s.solution }]),
    });
    expect(batch.totals).toEqual(samples.flatMap(() => [2, 1]));
    expect(completions.every((c) => formatReward(c) === 1)).toBe(true);
  });
});
