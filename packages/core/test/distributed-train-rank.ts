// One rank of the data-parallel training tests in distributed-train.test.ts (run as `node --import
// tsx distributed-train-rank.ts` with OTHINK_TRAIN_SPEC, a ToyRunSpec as JSON, and RANK /
// WORLD_SIZE / MASTER_* set by the test). Trains the toy task as its rank of the group and prints
// `RESULT <json>` (step metrics, completions, the result) and writes its final weights, raw float32,
// to OTHINK_TRAIN_WEIGHTS.<rank>; a failure prints `ERROR <json message>` and exits 1.
import { writeFileSync } from 'node:fs';
import { initDistributed } from '../src/index.js';
import { runToy, type ToyRunSpec } from './train-helpers.js';

const print = (tag: string, value: unknown) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`);

const group = initDistributed({ timeoutMs: 60_000 });
try {
  const spec = JSON.parse(process.env.OTHINK_TRAIN_SPEC ?? '') as ToyRunSpec;
  const start = performance.now();
  const run = await runToy(spec, group);
  const seconds = (performance.now() - start) / 1000;
  writeFileSync(`${process.env.OTHINK_TRAIN_WEIGHTS}.${group.rank}`, run.weights);
  print('RESULT', {
    rank: group.rank,
    result: run.result,
    steps: run.steps,
    completions: run.completions,
    seconds,
  });
  group.destroy();
} catch (e) {
  print('ERROR', (e as Error).message);
  process.exitCode = 1;
}
