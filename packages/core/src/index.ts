export * from './rl/index.js';
