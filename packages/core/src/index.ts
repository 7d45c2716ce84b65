export * from './distributed/index.js';
export * from './io/index.js';
export * from './model/index.js';
export * from './optim/index.js';
export * from './rl/index.js';
export * from './tensor/index.js';
export * from './train/index.js';
