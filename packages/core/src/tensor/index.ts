export { isGradEnabled, Node, noGrad } from './autograd.js';
export { bytesPerElement, type Device, type DType } from './dtype.js';
export * from './memory.js';
export { gelu, quickGelu, swiglu } from './ops/activation.js';
export { accumulate, add, clone, mean, mul, scale, sub, sum, sumAll } from './ops/arithmetic.js';
export { type AttentionOptions, attention } from './ops/attention.js';
export { embedding } from './ops/embedding.js';
export { type GrpoLossOpOptions, type GrpoLossOpResult, grpoLossOp } from './ops/grpo-loss.js';
export { crossEntropy, type LogprobOptions, lmHeadLogprobs, logprobsFromLogits } from './ops/logprobs.js';
export { maskedScatterRows } from './ops/masked-scatter.js';
export { linear, type MatmulOptions, matmul, sumRows } from './ops/matmul.js';
export { layerNorm, QWEN2VL_NORM_EPS, rmsNorm } from './ops/norm.js';
export {
  type CosSin,
  mropeCosSin,
  type RopeTableOptions,
  ropeInvFreq,
  visionRotaryCosSin,
} from './ops/rope-tables.js';
export { rotary } from './ops/rotary.js';
export { concat, narrow, split, writeSlice } from './ops/shape.js';
export { keep, tidy } from './scope.js';
export { formatShape, type Shape, shapeSize, Tensor, type TensorOptions } from './tensor.js';
