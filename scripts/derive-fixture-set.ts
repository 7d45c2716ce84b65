// Derives a second valid fixture set from a fixture folder (renamed cases, permuted token ids; see
// packages/testing/src/derive.ts), to run the fixture-driven suites on a set that is not the public one:
//   node --import tsx scripts/derive-fixture-set.ts [--from fixtures] [--seed 16] /tmp/derived
//   OTHINK_FIXTURES=/tmp/derived pnpm vitest run packages/core/test/qwen2vl-parity.test.ts ...
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { deriveFixtureSet, fixturesDir } from '../packages/testing/src/index.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { from: { type: 'string' }, seed: { type: 'string' } },
});
if (positionals.length !== 1) {
  console.error('usage: derive-fixture-set.ts [--from <fixtures>] [--seed <n>] <output folder>');
  process.exit(2);
}
const from = resolve(values.from ?? fixturesDir());
const to = resolve(positionals[0]);
deriveFixtureSet(from, to, { seed: values.seed === undefined ? undefined : Number(values.seed) });
console.log(`derived ${to} from ${from}`);
