export * from './optim/index.js';
export * from './rl/index.js';
export * from './tensor/index.js';
