export * from './datasets/index.js';
export * from './image/index.js';
export * from './processor/index.js';
export * from './schema.js';
export * from './tasks/index.js';
export * from './text/index.js';
