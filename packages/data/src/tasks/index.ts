export * from './answer.js';
export * from './counting.js';
export * from './font.js';
export * from './geometry.js';
export * from './writer.js';
