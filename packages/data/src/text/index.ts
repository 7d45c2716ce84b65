export * from './bpe-trainer.js';
export * from './chat-template.js';
export * from './prompts.js';
export * from './task-corpus.js';
export * from './task-tokenizer.js';
export * from './tokenizer.js';
