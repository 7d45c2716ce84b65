// The RL math of GRPO / GRPO-D: the native kernels, re-exported so users import one package,
// and the KL-weight schedules.
export {
  type AdvantageScale,
  fusedLinearLogprobs,
  fusedLinearLogprobsBackward,
  type GrpoLossOptions,
  type GrpoLossResult,
  type GrpoLossStats,
  type GrpoLossType,
  groupAdvantages,
  grpoLoss,
  type KlEstimator,
  klPenalty,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '@othink/native';
export { type DynamicKlOptions, type KlSchedule, klSchedule } from './kl-schedule.js';
