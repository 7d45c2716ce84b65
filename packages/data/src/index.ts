export * from './schema.js';
export * from './image/index.js';
