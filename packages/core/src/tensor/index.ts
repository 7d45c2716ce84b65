export { isGradEnabled, Node, noGrad } from './autograd.js';
export { bytesPerElement, type Device, type DType } from './dtype.js';
export * from './memory.js';
export { accumulate, add, clone, mean, mul, scale, sub, sum, sumAll } from './ops/arithmetic.js';
export { crossEntropy, type LogprobOptions, lmHeadLogprobs, logprobsFromLogits } from './ops/logprobs.js';
export { linear, type MatmulOptions, matmul, sumRows } from './ops/matmul.js';
export { concat, narrow, split } from './ops/shape.js';
export { keep, tidy } from './scope.js';
export { formatShape, type Shape, shapeSize, Tensor, type TensorOptions } from './tensor.js';
