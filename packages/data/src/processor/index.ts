export * from './collate.js';
export * from './image-processor.js';
export * from './labels.js';
export * from './qwen2vl-processor.js';
