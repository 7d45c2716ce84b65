// One rank of the multi-process tests in distributed.test.ts (run as `node --import tsx
// distributed-rank.ts` with OTHINK_TEST_SCENARIO and RANK / WORLD_SIZE / MASTER_* set by the test).
// Prints `RESULT <json>` with what it got; the test computes the expected values itself (it imports
// this file for rankValues and the sizes, so nothing runs without OTHINK_TEST_SCENARIO).
import {
  allReduceGradients,
  broadcastParameters,
  initDistributed,
  reduceMetrics,
  Tensor,
} from '../src/index.js';

const scenario = process.env.OTHINK_TEST_SCENARIO;
const print = (tag: string, value: unknown) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`);

/** The values of rank r's inputs: the test derives the expected results from the same function. */
export function rankValues(rank: number, n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) =>
    Math.fround(Math.sin(seed * 13.7 + rank * 3.1 + i * 0.37) * (rank + 1)),
  );
}

/** Parameter sizes of the gradient test: buckets of 1024 floats hold several, and 2500 spans more than one. */
export const PARAM_SIZES = [3, 1000, 7, 2500, 1, 600, 20];
/** Parameters without a gradient on rank 1 (counted as zeros there) and on every rank (left without one). */
export const MISSING_ON_RANK1 = 2;
export const MISSING_EVERYWHERE = 5;

function collectives(): void {
  const group = initDistributed({ timeoutMs: 20_000, forceNative: process.env.FORCE_NATIVE === '1' });
  const { rank, worldSize } = group;
  const out: Record<string, unknown> = { rank, worldSize, backend: group.backend };

  const sum = Tensor.from(rankValues(rank, 6, 1), [2, 3]);
  out.sum = Array.from(group.allReduce(sum, 'sum').toFloat32Array());
  const mean = Tensor.from(rankValues(rank, 5, 2), [5]);
  out.mean = Array.from(group.allReduce(mean, 'mean').toFloat32Array());
  out.max = Array.from(group.allReduce(Tensor.from(rankValues(rank, 4, 3), [4]), 'max').toFloat32Array());
  out.min = Array.from(group.allReduce(Tensor.from(rankValues(rank, 4, 3), [4]), 'min').toFloat32Array());
  const ints = Tensor.from(Int32Array.from([rank + 1, 100 * rank, -7]), [3]);
  out.intSum = Array.from(group.allReduce(ints, 'sum').toTypedArray());

  const root = worldSize - 1;
  const b = Tensor.from(rankValues(rank, 7, 4), [7]);
  out.broadcast = Array.from(group.broadcast(b, root).toFloat32Array());

  const gathered = group.allGather(Tensor.from(rankValues(rank, 3, 5), [3]));
  out.gatherShape = gathered.shape;
  out.gather = Array.from(gathered.toFloat32Array());

  group.barrier();
  out.metrics = reduceMetrics(group, { loss: 0.5 + rank, tokens: 10 * (rank + 1) }, 'mean');
  out.metricsSum = reduceMetrics(group, { tokens: 10 * (rank + 1) }, 'sum');

  // Gradients: PARAM_SIZES parameters, buckets of 4 KiB.
  const params = PARAM_SIZES.map((n) => Tensor.zeros([n], { requiresGrad: true }));
  params.forEach((p, i) => {
    const missing = i === MISSING_EVERYWHERE || (i === MISSING_ON_RANK1 && rank === 1);
    p.grad = missing ? null : Tensor.from(rankValues(rank, p.size, 10 + i), [p.size]);
  });
  allReduceGradients(group, params, { bucketBytes: 4096 });
  out.grads = params.map((p) => (p.grad ? Array.from(p.grad.toFloat32Array()) : null));

  const weights = PARAM_SIZES.map((n, i) => Tensor.from(rankValues(rank, n, 30 + i), [n]));
  broadcastParameters(group, weights, 0);
  out.weights = weights.map((w) => Array.from(w.toFloat32Array()));

  group.destroy();
  print('RESULT', out);
}

async function peerDies(): Promise<void> {
  // Rank 1 is killed by the test (SIGKILL) while rank 0 waits in an all-reduce.
  const group = initDistributed({ timeoutMs: Number(process.env.TIMEOUT_MS ?? 60_000) });
  group.barrier();
  if (group.rank === 1) {
    print('READY', group.rank);
    await new Promise((r) => setTimeout(r, 120_000));
    return;
  }
  const t0 = Date.now();
  try {
    print('ENTER', group.rank);
    group.allReduce(Tensor.from([1, 2, 3], [3]), 'sum');
    print('RESULT', { error: null });
  } catch (e) {
    print('RESULT', { error: (e as Error).message, ms: Date.now() - t0 });
  }
}

async function peerHangs(): Promise<void> {
  // Rank 1 stays alive but does not join the all-reduce: rank 0 gives up at the timeout.
  const group = initDistributed({ timeoutMs: Number(process.env.TIMEOUT_MS) });
  if (group.rank === 1) {
    await new Promise((r) => setTimeout(r, Number(process.env.TIMEOUT_MS) * 3));
    return;
  }
  const t0 = Date.now();
  try {
    group.allReduce(Tensor.from([1], [1]), 'sum');
    print('RESULT', { error: null });
  } catch (e) {
    print('RESULT', { error: (e as Error).message, ms: Date.now() - t0 });
  }
}

function join(): void {
  // Just joins (the mismatched-world-size test): prints the error, if any.
  try {
    initDistributed({ timeoutMs: 10_000 }).destroy();
    print('RESULT', { error: null });
  } catch (e) {
    print('RESULT', { error: (e as Error).message });
  }
}

if (scenario === 'collectives') collectives();
else if (scenario === 'peer-dies') await peerDies();
else if (scenario === 'peer-hangs') await peerHangs();
else if (scenario === 'join') join();
else if (scenario !== undefined) throw new Error(`unknown scenario ${scenario}`);
