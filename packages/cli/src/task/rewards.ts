// Rewards of a run (@othink/rewards): the training reward of GRPO (paper Eq. 1) and the evaluation
// metrics per task (R1-V's eval scripts, §3.3).
import type { R1VSample } from '@othink/data';
import {
  accuracyReward,
  countingAccuracy,
  formatReward,
  lenientFormatReward,
  paperReward,
  type RewardLogger,
  scoreCountingAnswer,
  scoreMathAnswer,
} from '@othink/rewards';
import type { GrpoSection, TaskName } from '../config/schema.js';

/** Scores completions for GRPO: the total reward and each function's values (TRL names). */
export type RewardScorerFn = (
  completions: string[],
  samples: R1VSample[],
) => Promise<{ total: number[]; perFunction: Record<string, number[]> }>;

/**
 * R = accuracy_reward + alpha * format_reward (Eq. 1). `r1v` accuracy is R1-V's accuracy_reward
 * (used for both tasks in training); `counting` is the SuperCLEVR integer metric.
 */
export function trainingReward(reward: GrpoSection['reward'], logger?: RewardLogger): RewardScorerFn {
  const combined = paperReward({
    alpha: reward.alpha,
    accuracy: reward.accuracy === 'counting' ? countingAccuracy : accuracyReward,
    format: reward.format === 'lenient' ? lenientFormatReward : formatReward,
    ...(logger ? { logger } : {}),
  });
  return async (completions, samples) => {
    const batch = await combined.score({ completions, samples: samples as Record<string, unknown>[] });
    return { total: batch.totals, perFunction: batch.perFunction };
  };
}

/** Evaluation accuracy: counting compares `<answer> N </answer>` as an integer (SuperCLEVR eval), geometry checks the value (GeoQA eval); format is R1-V's strict format. */
export function evalScorer(task: TaskName) {
  const accuracy = task === 'counting' ? scoreCountingAnswer : scoreMathAnswer;
  return async (completions: string[], samples: R1VSample[]) => ({
    accuracy: completions.map((c, i) => accuracy(c, samples[i].solution)),
    format: completions.map((c) => formatReward(c)),
  });
}
