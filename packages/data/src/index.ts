export * from './schema.js';
export * from './image/index.js';
export * from './tasks/index.js';
export * from './text/index.js';
export * from './datasets/index.js';
export * from './processor/index.js';
