export * from './compare.js';
export * from './derive.js';
export * from './finite-difference.js';
export * from './fixture-set.js';
export * from './fixtures.js';
export * from './gpu.js';
