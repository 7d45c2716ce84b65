export { AdamW, type AdamWOptions, type AdamWState } from './adamw.js';
export { clipGradNorm, type GradNorm, gradNorm } from './clip.js';
