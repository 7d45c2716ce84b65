// The rewards agree with the ground truth of @othink/data's synthetic tasks: a completion that
// states the generator's answer (in the R1-V format) scores accuracy 1 and format 1; a wrong answer
// of the same shape scores accuracy 0.
import { generateCountingTask, generateGeometryTask, groundTruthAnswer } from '@othink/data';
import { describe, expect, it } from 'vitest';
import { countingAccuracy, formatReward, mathAccuracy, type RewardContext } from '../src/index.js';

const context = (sample: Record<string, unknown>, index: number): RewardContext => ({
  prompt: '',
  sample,
  index,
});
const completion = (answer: string) => `<think>Looking at the figure.</think> <answer>${answer}</answer>`;

describe('rewards vs the synthetic tasks', () => {
  it('counting: 200 scenes', async () => {
    const samples = generateCountingTask({ n: 200, seed: 17, width: 112, height: 112 });
    for (const [i, s] of samples.entries()) {
      const answer = groundTruthAnswer(s);
      expect(answer).toBe(String(s.answer));
      expect(await countingAccuracy(completion(answer), context(s, i))).toBe(1);
      expect(await countingAccuracy(completion(String(Number(answer) + 1)), context(s, i))).toBe(0);
      expect(formatReward(completion(answer))).toBe(1);
    }
  });

  it('geometry: 200 diagrams (angles with degree signs, lengths with units)', async () => {
    const samples = generateGeometryTask({ n: 200, seed: 23 });
    for (const [i, s] of samples.entries()) {
      const answer = groundTruthAnswer(s);
      expect(await mathAccuracy(completion(answer), context(s, i))).toBe(1);
      // The same unit with a different number is wrong.
      const wrong = answer.replace(/^[0-9.]+/, (n) => String(Number(n) + 7));
      expect(wrong).not.toBe(answer);
      expect(await mathAccuracy(completion(wrong), context(s, i))).toBe(0);
    }
  });
});
