// @othink/cli: the `othink` command's building blocks, for scripts that drive runs themselves.
export { type EvalOptions, runEvalCommand } from './commands/eval.js';
export { type GenerateOptions, runGenerate } from './commands/generate.js';
export {
  describeModel,
  loadInitialModel,
  loadModelFolder,
  toGrpoConfig,
  toSftConfig,
} from './commands/model.js';
export { formatSummary, runTrain, type TrainOptions, type TrainSummary } from './commands/train.js';
export * from './config/index.js';
export * from './plot.js';
export * from './run/interrupt.js';
export * from './run/jsonl.js';
export * from './run/progress.js';
export * from './run/run-folder.js';
export * from './task/datasets.js';
export * from './task/encode.js';
export * from './task/processor.js';
export * from './task/rewards.js';
export * from './tiny-model.js';
