export {
  DEFAULT_MASTER_PORT,
  type DistributedEnv,
  type Environment,
  firstSlurmHost,
  resolveDistributedEnv,
} from './env.js';
export { allGatherJson } from './gather.js';
export {
  type AllReduceGradientsOptions,
  allReduceGradients,
  broadcastParameters,
  reduceMetrics,
} from './gradients.js';
export {
  distributedBackends,
  type HostArray,
  type InitDistributedOptions,
  initDistributed,
  ProcessGroup,
  type ReduceOp,
} from './group.js';
