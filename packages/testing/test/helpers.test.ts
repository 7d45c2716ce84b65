import { describe, expect, it } from 'vitest';
import { expectClose, Fixture, finiteDifference, maxAbsDiff, seededRandom } from '../src/index.js';

describe('test helpers', () => {
  it('finite differences recover the gradient of a known function', () => {
    // f(x) = sum x_i^3 -> df/dx_i = 3 x_i^2
    const x = Float64Array.from([0.5, -1.25, 2]);
    const g = finiteDifference((v) => v.reduce((s, xi) => s + xi ** 3, 0), x, 1e-4);
    expectClose(g, [0.75, 4.6875, 12], { atol: 1e-7 }, 'd/dx sum x^3');
    expect(Array.from(x)).toEqual([0.5, -1.25, 2]); // restored
  });

  it('expectClose names the worst element and never accepts NaN', () => {
    expect(() => expectClose([1, 2, 3], [1, 2.5, 3], { atol: 0.1 }, 'v')).toThrow(/v: 1 of 3.*\[1\]/);
    expect(() => expectClose([Number.NaN], [0], { atol: 1 }, 'n')).toThrow(/n:/);
    expect(maxAbsDiff([1, 5], [1, 2]).index).toBe(1);
  });

  it('seeded random streams repeat', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    expect([a(), a(), a()]).toEqual([b(), b(), b()]);
  });

  it('reads fixture tensors with their dtypes and shapes', () => {
    const f = new Fixture('grpo/case-g4x2-v1000.safetensors');
    expect(f.shape('logits')).toEqual([8, 8, 1000]);
    expect(f.get('completion_ids').dtype).toBe('I64');
    expect(f.scalar('num_generations')).toBe(4);
  });
});
