import { describe, expect, it } from 'vitest';
import {
  expectClose,
  Fixture,
  FORWARD_CASE_FILTER,
  finiteDifference,
  fixtureCases,
  fixtureHeader,
  GENERATION_CASE_FILTER,
  GRADIENT_CASE_FILTER,
  isPublicFixtureSet,
  maxAbsDiff,
  PUBLIC_SET_ONLY,
  seededRandom,
  specialTokens,
  tinyConfig,
} from '../src/index.js';

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
    for (const name of fixtureCases('grpo')) {
      const f = new Fixture(`grpo/${name}.safetensors`);
      const [n, t, v] = f.shape('logits');
      expect(f.get('logits').data.length).toBe(n * t * v);
      expect(f.shape('completion_ids')).toEqual([n, t]);
      expect(f.get('completion_ids').dtype).toBe('I64');
      expect(n % f.scalar('num_generations')).toBe(0);
      // The header-only reader sees the same tensors.
      const header = fixtureHeader(`grpo/${name}.safetensors`);
      expect([...header.keys()].sort()).toEqual([...f.tensors.keys()].sort());
      expect(header.get('logits')).toEqual({ dtype: 'F64', shape: [n, t, v] });
    }
  });

  it.skipIf(!isPublicFixtureSet('grpo'))(`the public grpo case-g4x2-v1000 ${PUBLIC_SET_ONLY}`, () => {
    const f = new Fixture('grpo/case-g4x2-v1000.safetensors');
    expect(f.shape('logits')).toEqual([8, 8, 1000]);
    expect(f.scalar('num_generations')).toBe(4);
  });

  it('lists and filters case files; reads the special tokens', () => {
    const all = fixtureCases('qwen2vl-tiny');
    const generation = fixtureCases('qwen2vl-tiny', GENERATION_CASE_FILTER);
    const forward = fixtureCases('qwen2vl-tiny', FORWARD_CASE_FILTER);
    expect(generation.every((c) => all.includes(c) && !forward.includes(c))).toBe(true);
    expect(fixtureCases('qwen2vl-tiny', GRADIENT_CASE_FILTER).every((c) => forward.includes(c))).toBe(true);
    expect(() => fixtureCases('qwen2vl-tiny', { with: ['no such tensor'] })).toThrow(
      /no case-\*.safetensors/,
    );
    const tokens = specialTokens();
    const vocab = tinyConfig().vocab_size;
    const every = [...Object.values(tokens.ids), ...tokens.textIds, ...tokens.unusedIds].sort(
      (a, b) => a - b,
    );
    // Special, text and unused ids partition the vocabulary.
    expect(every).toEqual(Array.from({ length: vocab }, (_, i) => i));
    expect(tinyConfig().image_token_id).toBe(tokens.imagePad);
  });
});
