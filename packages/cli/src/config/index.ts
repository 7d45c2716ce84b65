export * from './checks.js';
export * from './errors.js';
export * from './keys.js';
export * from './load.js';
export * from './resolve.js';
export * from './schema.js';
