// `othink _dist-selftest` (hidden): what each rank of a launched job runs to check the launcher and
// the communicator end to end without training: all-reduce, broadcast, all-gather and barrier on
// small tensors, each result checked against the value every rank can compute from the world size.
// Rank 0 prints what it got. Options make a rank fail or the job wait, for the launcher's tests.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { initDistributed, Tensor } from '@othink/core';

export interface DistSelftestOptions {
  /** This rank exits with code 3 before the all-reduce (the others then wait in it). */
  failRank?: number;
  /** Wait this long after the checks (to be interrupted). */
  sleepMs?: number;
  /** On SIGINT, append a line to <dir>/rank-<r>.txt (then exit 130 after a short pause). */
  markerDir?: string;
}

function same(a: ArrayLike<number>, b: number[]): boolean {
  return a.length === b.length && b.every((x, i) => a[i] === x);
}

export async function runDistSelftest(options: DistSelftestOptions = {}): Promise<void> {
  const group = initDistributed();
  const { rank, worldSize } = group;
  const say = (line: string) => {
    if (rank === 0) process.stdout.write(`${line}\n`);
  };
  if (options.markerDir !== undefined) {
    const file = join(options.markerDir, `rank-${rank}.txt`);
    process.on('SIGINT', () => {
      appendFileSync(file, 'SIGINT\n');
      // A pause before exiting, so that a second (duplicated) SIGINT would be recorded too.
      setTimeout(() => process.exit(130), 300);
    });
  }
  say(`selftest: rank ${rank} of ${worldSize} (${group.backend})`);
  if (rank === options.failRank) {
    process.stderr.write(`selftest: rank ${rank} fails on purpose\n`);
    process.exit(3);
  }
  const ranks = Array.from({ length: worldSize }, (_, r) => r);
  const checks: [string, ArrayLike<number>, number[]][] = [];

  const x = group.allReduce(Tensor.from([rank + 1, 2 ** rank], [2]), 'sum');
  checks.push([
    'allReduce sum',
    x.toFloat32Array(),
    [ranks.reduce((a, r) => a + r + 1, 0), ranks.reduce((a, r) => a + 2 ** r, 0)],
  ]);
  const m = group.allReduce(Tensor.from([2 * rank], [1]), 'mean');
  checks.push(['allReduce mean', m.toFloat32Array(), [worldSize - 1]]);
  const b = group.broadcast(Tensor.from(Int32Array.from([rank, 10 * rank]), [2]), worldSize - 1);
  checks.push(['broadcast', b.toTypedArray(), [worldSize - 1, 10 * (worldSize - 1)]]);
  const g = group.allGather(Tensor.from([rank], [1]));
  checks.push(['allGather', g.toFloat32Array(), ranks]);
  group.barrier();

  for (const [name, got, want] of checks) {
    if (!same(got, want))
      throw new Error(`selftest: ${name} on rank ${rank} gave [${Array.from(got)}], expected [${want}]`);
    say(`selftest: ${name} [${Array.from(got).join(', ')}]`);
  }
  say('selftest: barrier ok');
  if (options.sleepMs) await new Promise((resolve) => setTimeout(resolve, options.sleepMs));
  group.destroy();
  say('selftest: ok');
}
