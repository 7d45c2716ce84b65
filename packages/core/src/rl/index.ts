// The RL math of GRPO / GRPO-D, re-exported from the native kernels so users import one package.
export {
  type AdvantageScale,
  fusedLinearLogprobs,
  fusedLinearLogprobsBackward,
  type GrpoLossOptions,
  type GrpoLossResult,
  type GrpoLossStats,
  type GrpoLossType,
  grpoLoss,
  groupAdvantages,
  type KlEstimator,
  klPenalty,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '@othink/native';
