import { expectClose } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { groupAdvantages } from '../index.js';

/** Float64 reference: mean and unbiased std per group of the given values. */
function moments(values: number[]) {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, std: Math.sqrt(variance) };
}

describe('groupAdvantages', () => {
  const rewards = [0, 1, 1, 2, /* group 2 */ 0.5, 0.5, 0.5, 0.5, /* group 3 */ 3, -1, 0, 2];
  const g = 4;
  const groups = [0, 1, 2].map((k) => rewards.slice(k * g, k * g + g));

  it("scale 'group': (r - mean) / (std + 1e-4) with the unbiased std (paper Eq. 2, R1-V)", () => {
    const out = groupAdvantages({ rewards: Float32Array.from(rewards), groupSize: g });
    const expected = groups.flatMap((r) => {
      const { mean, std } = moments(r);
      return r.map((x) => (x - mean) / (std + 1e-4));
    });
    expectClose(out.advantages, expected, { atol: 1e-6, rtol: 1e-6 }, 'advantages');
    expectClose(
      out.groupMeans,
      groups.map((r) => moments(r).mean),
      { atol: 1e-7 },
      'groupMeans',
    );
    expectClose(
      out.groupStds,
      groups.map((r) => moments(r).std),
      { atol: 1e-6 },
      'groupStds',
    );
  });

  it('a group with equal rewards gets exactly zero advantage', () => {
    const out = groupAdvantages({ rewards: Float32Array.from(rewards), groupSize: g });
    expect(Array.from(out.advantages.subarray(4, 8))).toEqual([0, 0, 0, 0]);
    expect(out.groupStds[1]).toBe(0);
  });

  it("scale 'batch' divides by the batch std; 'none' only centres", () => {
    const batchStd = moments(rewards).std;
    const centred = groups.flatMap((r) => r.map((x) => x - moments(r).mean));
    const batch = groupAdvantages({ rewards: Float32Array.from(rewards), groupSize: g, scale: 'batch' });
    expectClose(
      batch.advantages,
      centred.map((x) => x / (batchStd + 1e-4)),
      { atol: 1e-6 },
      'batch',
    );
    const none = groupAdvantages({ rewards: Float32Array.from(rewards), groupSize: g, scale: 'none' });
    expectClose(none.advantages, centred, { atol: 1e-6 }, 'none');
  });

  it('a custom eps is used', () => {
    const out = groupAdvantages({ rewards: Float32Array.of(0, 1), groupSize: 2, eps: 0 });
    expectClose(out.advantages, [-1 / Math.SQRT2, 1 / Math.SQRT2], { atol: 1e-7 }, 'eps 0');
  });

  it('non-finite rewards are an error naming the index, or left out with advantage 0', () => {
    const bad = Float32Array.from(rewards);
    bad[9] = Number.NaN;
    expect(() => groupAdvantages({ rewards: bad, groupSize: g })).toThrow(/rewards\[9\] is NaN/);
    bad[9] = Number.POSITIVE_INFINITY;
    expect(() => groupAdvantages({ rewards: bad, groupSize: g })).toThrow(/rewards\[9\] is infinite/);
    bad[9] = Number.NaN;
    const out = groupAdvantages({ rewards: bad, groupSize: g, nonFinite: 'ignore' });
    expect(out.advantages[9]).toBe(0);
    const rest = [3, 0, 2];
    const { mean, std } = moments(rest);
    expectClose(
      [out.advantages[8], out.advantages[10], out.advantages[11]],
      rest.map((x) => (x - mean) / (std + 1e-4)),
      { atol: 1e-6 },
      'finite rest',
    );
    expectClose(
      out.advantages.subarray(0, 8),
      groupAdvantages({ rewards: Float32Array.from(rewards.slice(0, 8)), groupSize: g }).advantages,
      { atol: 0 },
      'other groups unchanged',
    );
  });

  it('a group of one gets advantage 0 (no NaN from an undefined std)', () => {
    const out = groupAdvantages({ rewards: Float32Array.of(1, 5, 2), groupSize: 1 });
    expect(Array.from(out.advantages)).toEqual([0, 0, 0]);
  });

  // Group sizes 2, 4, 8 and 16 take a SIMD path (several groups per vector register); the others a
  // scalar float64 path. Both must agree with the float64 reference, including the last vector of a
  // batch that does not fill all 16 lanes and batches big enough to run on several threads.
  it.each([
    [2, 7],
    [4, 3],
    [8, 9],
    [8, 16385],
    [16, 5],
    [3, 11],
    [5, 7],
    [32, 3],
  ])('group size %i x %i groups matches the float64 reference', (groupSize, groups) => {
    let state = groupSize * 7919 + groups;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    const values = Array.from(
      { length: groupSize * groups },
      () => (random() < 0.5 ? 1 : 0) + 0.5 * random(),
    );
    // One group of equal rewards: exactly zero advantage on every path.
    values.fill(0.75, 0, groupSize);
    const rewards = Float32Array.from(values);
    const chunks = Array.from({ length: groups }, (_, k) =>
      Array.from(rewards.subarray(k * groupSize, (k + 1) * groupSize)),
    );
    for (const scale of ['group', 'none'] as const) {
      const out = groupAdvantages({ rewards, groupSize, scale });
      const expected = chunks.flatMap((r) => {
        const { mean, std } = moments(r);
        return r.map((x) => (x - mean) / (scale === 'group' ? std + 1e-4 : 1));
      });
      expectClose(out.advantages, expected, { atol: 2e-6, rtol: 1e-6 }, `${scale} advantages`);
      expectClose(
        out.groupMeans,
        chunks.map((r) => moments(r).mean),
        { atol: 1e-7, rtol: 1e-6 },
        'groupMeans',
      );
      expectClose(
        out.groupStds,
        chunks.map((r) => moments(r).std),
        { atol: 1e-7, rtol: 1e-6 },
        'groupStds',
      );
      expect(Array.from(out.advantages.subarray(0, groupSize))).toEqual(new Array(groupSize).fill(0));
    }
  });

  it('a non-finite reward deep in a large batch is found and named', () => {
    const rewards = new Float32Array(8 * 5000).fill(1);
    rewards[31_337] = Number.NEGATIVE_INFINITY;
    expect(() => groupAdvantages({ rewards, groupSize: 8 })).toThrow(/rewards\[31337\] is infinite/);
  });

  it('writes into caller-owned out / outGroupMeans / outGroupStds and returns them', () => {
    const out = new Float32Array(rewards.length);
    const outGroupMeans = new Float32Array(3);
    const outGroupStds = new Float32Array(3);
    const fresh = groupAdvantages({ rewards: Float32Array.from(rewards), groupSize: g });
    const got = groupAdvantages({
      rewards: Float32Array.from(rewards),
      groupSize: g,
      out,
      outGroupMeans,
      outGroupStds,
    });
    expect(got.advantages).toBe(out);
    expect(got.groupMeans).toBe(outGroupMeans);
    expect(got.groupStds).toBe(outGroupStds);
    expect(Array.from(out)).toEqual(Array.from(fresh.advantages as Float32Array));
    expect(Array.from(outGroupStds)).toEqual(Array.from(fresh.groupStds as Float32Array));
    expect(() =>
      groupAdvantages({
        rewards: Float32Array.from(rewards),
        groupSize: g,
        outGroupMeans: new Float32Array(2),
      }),
    ).toThrow(/outGroupMeans/);
  });
});
