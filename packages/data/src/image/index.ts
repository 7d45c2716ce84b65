export * from './decode.js';
export * from './processor.js';
export * from './resize.js';
export * from './smart-resize.js';
