/**
 * Child-process entry of the benchmarks: `node --import tsx --expose-gc child.ts '<job json>'`.
 * Runs one job from jobs.ts and prints its result as one line `@@result <json>` on stdout; progress
 * goes to stderr. The parent (kernels.ts) starts one per measured configuration.
 */
import { type Job, RESULT_PREFIX, runJob } from './jobs.js';

const job = JSON.parse(process.argv[2] ?? '{}') as Job;
const result = runJob(job);
process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
