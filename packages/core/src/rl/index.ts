// The RL math of GRPO / GRPO-D: the native kernels, re-exported so users import one package
// (they take typed arrays or tensors, on the CPU or CUDA; for autograd use the tensor ops
// logprobsFromLogits / lmHeadLogprobs / grpoLossOp), and the KL-weight schedules.
export {
  type AdvantageScale,
  type F32Input,
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
  type LogprobsOutputs,
  type LogprobsResult,
  type TensorLike,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '@othink/native';
export { type DynamicKlOptions, type KlSchedule, klSchedule } from './kl-schedule.js';
