// The paper's reward, Eq. 1: R = R_acc + alpha * R_format, with alpha = 1 by default (paper §3.1).

import { accuracyReward } from './accuracy.js';
import { type CombinedReward, type CombineRewardsOptions, combineRewards } from './compose.js';
import { formatReward } from './format.js';
import type { RewardFunction } from './types.js';

export interface PaperRewardOptions extends CombineRewardsOptions {
  /** Weight of the format reward; the paper's optimum and default is 1 (§3.1, Fig. 4). */
  alpha?: number;
  /**
   * The accuracy reward; default {@link accuracyReward} (R1-V's, used for both tasks in training).
   * `countingAccuracy` is the stricter SuperCLEVR evaluation metric.
   */
  accuracy?: RewardFunction;
  /** The format reward; default R1-V's strict {@link formatReward}. */
  format?: RewardFunction;
}

/**
 * OThink-MR1's GRPO / GRPO-D reward (paper Eq. 1, following R1-V's `reward_funcs = [accuracy_reward,
 * format_reward]`): `accuracy_reward + alpha * format_reward`, each 0 or 1, logged under R1-V's names.
 */
export function paperReward(options: PaperRewardOptions = {}): CombinedReward {
  return combineRewards(
    [
      { name: 'accuracy_reward', fn: options.accuracy ?? accuracyReward, weight: 1 },
      { name: 'format_reward', fn: options.format ?? formatReward, weight: options.alpha ?? 1 },
    ],
    options,
  );
}
