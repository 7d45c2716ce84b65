export {
  parseQwen2VLConfig,
  QWEN2VL_NORM_EPS,
  type Qwen2VLConfig,
  type Qwen2VLTextConfig,
  type Qwen2VLVisionConfig,
} from './config.js';
export { type GenerationConfig, type GenerationOutput, generate } from './generate.js';
export { checkpointNames, parameterShapes } from './parameters.js';
export {
  type ModelDType,
  type ModelPlacement,
  Qwen2VLForConditionalGeneration,
  type Qwen2VLInputs,
  type Qwen2VLOutput,
} from './qwen2vl.js';
export { getRopeIndex, type RopeIndex, type RopeIndexInput } from './rope-index.js';
export {
  type CosSin,
  mropeCosSin,
  type RopeTableOptions,
  ropeInvFreq,
  visionRotaryCosSin,
} from './rope-tables.js';
export {
  completionSeed,
  Random,
  type SampleTokensOptions,
  type SamplingConfig,
  sampleToken,
  sampleTokens,
  seedWords,
} from './sampling.js';
export type { LayerCache } from './text.js';
export { visionCuSeqlens, visionRotaryPositions } from './vision.js';
