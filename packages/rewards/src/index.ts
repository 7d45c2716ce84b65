// @othink/rewards: verifiable rewards for GRPO / GRPO-D (paper Eq. 1, R1-V's accuracy and format rewards).
export * from './accuracy.js';
export * from './completion.js';
export * from './compose.js';
export * from './extract.js';
export * from './format.js';
export * from './math-answer.js';
export * from './paper-reward.js';
export * from './py-text.js';
export type * from './types.js';
export * from './worker-reward.js';
