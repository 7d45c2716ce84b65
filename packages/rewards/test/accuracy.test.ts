import { describe, expect, it } from 'vitest';
import {
  accuracyReward,
  countingAccuracy,
  createCountingAccuracy,
  createMathAccuracy,
  geometryAccuracy,
  mathAccuracy,
  type RewardContext,
  scoreCountingAnswer,
  scoreMathAnswer,
} from '../src/index.js';

const context = (sample: Record<string, unknown>): RewardContext => ({
  prompt: 'How many?',
  sample,
  index: 0,
});

// [completion, solution, reward]
const MATH_CASES: [string, string, number][] = [
  ['<think>20 + 90 = 110, so 180 - 110</think><answer>70°</answer>', '<answer> 70° </answer>', 1],
  ['<think>t</think><answer>70 degrees</answer>', '<answer>70°</answer>', 1],
  ['<think>t</think><answer>70</answer>', '<answer>70°</answer>', 1],
  ['<think>t</think><answer>$70^{\\circ}$</answer>', '70°', 1],
  ['<think>t</think><answer>\n70°\n</answer>', '<answer>70°</answer>', 1],
  ['<think>t</think><answer>110°</answer>', '<answer>70°</answer>', 0],
  ['<think>t</think><answer>70cm</answer>', '<answer>70°</answer>', 0],
  ['<think>t</think><answer>3 cm</answer>', '3cm', 1],
  ['<think>t</think><answer>2\\sqrt{3}</answer>', '<answer>2√{3}</answer>', 1],
  ['<think>t</think><answer>\\frac{3}{4}</answer>', '<answer>0.75</answer>', 1],
  ['<think>t</think><answer>(B)</answer>', '<answer>B</answer>', 1],
  ['<think>t</think><answer>(C)</answer>', '<answer>B</answer>', 0],
  ['<think>t</think><answer> 3 </answer>', '<answer> 3 </answer>', 1],
  ['<think>t</think><answer>3</answer>', '3', 1],
  // Only the first <answer> counts, as in R1-V's re.search.
  ['<answer>110°</answer><answer>70°</answer>', '<answer>70°</answer>', 0],
  // No tags: the whole completion is the answer (R1-V's fallback and math_verify on the whole text).
  ['70°', '<answer>70°</answer>', 1],
  ['70 degrees', '<answer>70°</answer>', 1],
  ['The angle is 70°', '<answer>70°</answer>', 0],
  // String fallback: equal stripped texts score 1 even when they are not numbers.
  ['<think>t</think><answer> AB ⊥ CD </answer>', '<answer>AB ⊥ CD</answer>', 1],
  ['<think>t</think><answer>AB ∥ CD</answer>', '<answer>AB ⊥ CD</answer>', 0],
  // R1-V's fallback regex has no DOTALL: a multi-line non-numeric answer is compared as the whole text.
  ['<answer>\nAB ⊥ CD\n</answer>', '<answer>AB ⊥ CD</answer>', 0],
  ['', '<answer>3</answer>', 0],
  ['<think>t</think><answer></answer>', '<answer>3</answer>', 0],
];

describe('scoreMathAnswer (R1-V accuracy_reward)', () => {
  it.each(MATH_CASES)('%j vs %j', (completion, solution, reward) => {
    expect(scoreMathAnswer(completion, solution)).toBe(reward);
  });

  it('passes tolerances through', () => {
    expect(scoreMathAnswer('<answer>3.46</answer>', '<answer>2√{3}</answer>')).toBe(0);
    expect(scoreMathAnswer('<answer>3.46</answer>', '<answer>2√{3}</answer>', { relTol: 1e-2 })).toBe(1);
  });
});

// [completion, solution, reward]
const COUNTING_CASES: [string, string | number, number][] = [
  ['<think>3 cubes</think><answer> 3 </answer>', '<answer> 3 </answer>', 1],
  ['<think>t</think><answer>3</answer>', 3, 1],
  ['<think>t</think><answer>10</answer>', '10', 1],
  ['<think>t</think><answer>007</answer>', '7', 1],
  ['<think>t</think><answer>\u0663</answer>', 3, 1],
  ['<think>t</think><answer>4</answer>', 3, 0],
  ['<think>t</think><answer>3 cubes</answer>', 3, 0],
  ['<think>t</think><answer>three</answer>', 3, 0],
  ['<think>t</think><answer>3.0</answer>', 3, 0],
  ['I see 3 objects.', 3, 0],
  // The SuperCLEVR regex searches on to the first <answer> that holds an integer.
  ['<answer>x</answer><answer>3</answer>', 3, 1],
  ['<answer>4</answer><answer>3</answer>', 3, 0],
];

describe('scoreCountingAnswer (R1-V SuperCLEVR metric)', () => {
  it.each(COUNTING_CASES)('%j vs %j', (completion, solution, reward) => {
    expect(scoreCountingAnswer(completion, solution)).toBe(reward);
  });

  it('rejects a ground truth that is not an integer', () => {
    expect(() => scoreCountingAnswer('<answer>3</answer>', 'three')).toThrow(/"three" is not an integer/);
    expect(() => scoreCountingAnswer('<answer>3</answer>', 3.5)).toThrow(TypeError);
    expect(() => scoreCountingAnswer('<answer>3</answer>', '<answer>3 cubes</answer>')).toThrow(TypeError);
  });
});

describe('accuracy reward functions', () => {
  it('read the ground truth from sample.solution', async () => {
    const good = '<think>t</think><answer>70°</answer>';
    expect(await mathAccuracy(good, context({ solution: '<answer>70°</answer>' }))).toBe(1);
    expect(await mathAccuracy(good, context({ solution: '<answer>40°</answer>' }))).toBe(0);
    expect(await countingAccuracy('<answer>3</answer>', context({ solution: '<answer> 3 </answer>' }))).toBe(
      1,
    );
    expect(await countingAccuracy('<answer>3</answer>', context({ solution: 4 }))).toBe(0);
    expect(geometryAccuracy).toBe(mathAccuracy);
    expect(accuracyReward).toBe(mathAccuracy);
  });

  it('read another field when told to', async () => {
    const byAnswer = createMathAccuracy({ solutionField: 'answer' });
    expect(await byAnswer('<answer>3cm</answer>', context({ answer: '3 cm', solution: '4 cm' }))).toBe(1);
    const byCount = createCountingAccuracy({ solutionField: 'count' });
    expect(await byCount('<answer>5</answer>', context({ count: 5 }))).toBe(1);
    const loose = createMathAccuracy({ relTol: 1e-2 });
    expect(await loose('<answer>1.73</answer>', context({ solution: '\\sqrt{3}' }))).toBe(1);
  });

  it('explain a missing ground truth', () => {
    expect(() => mathAccuracy('<answer>3</answer>', context({ problem: 'How many?' }))).toThrow(
      "math accuracy: the sample's 'solution' field must be the ground truth (string or number), got undefined; " +
        "the sample's fields are: problem",
    );
    expect(() => countingAccuracy('<answer>3</answer>', context({ solution: null }))).toThrow(/got null/);
  });
});
