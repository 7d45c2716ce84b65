// Bad input to every entry point: a JS Error that names the argument, never a crash.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import * as native from '../index.js';

const f32 = (n: number) => new Float32Array(n);
const i32 = (...v: number[]) => Int32Array.from(v);

describe('argument validation', () => {
  const lp = { logits: f32(6), targets: i32(0, 2), vocabSize: 3 };

  it('tokenLogprobs', () => {
    expect(() => native.tokenLogprobs(undefined as never)).toThrow(
      /tokenLogprobs: expected one options object/,
    );
    expect(() => native.tokenLogprobs({ ...lp, logits: new Float64Array(6) as never })).toThrow(
      /logits must be a Float32Array or a float32 tensor \(got Float64Array\)/,
    );
    expect(() => native.tokenLogprobs({ ...lp, targets: [0, 1] as never })).toThrow(
      /targets must be a Int32Array or a int32 tensor \(got Array\)/,
    );
    expect(() => native.tokenLogprobs({ ...lp, logits: f32(7) })).toThrow(
      /logits has 7 elements; expected 6 \(targets.length \* vocabSize = 2 \* 3\)/,
    );
    expect(() => native.tokenLogprobs({ ...lp, targets: i32(0, 3) })).toThrow(
      /targets\[1\] = 3 is outside the vocabulary \[0, 3\)/,
    );
    expect(() => native.tokenLogprobs({ ...lp, targets: i32(-1, 0) })).toThrow(/targets\[0\] = -1/);
    expect(() => native.tokenLogprobs({ ...lp, targets: i32(-100, 0), ignoreIndex: -1 })).toThrow(
      /targets\[0\] = -100 .* not ignoreIndex = -1/,
    );
    expect(() => native.tokenLogprobs({ ...lp, vocabSize: 2.5 })).toThrow(
      /vocabSize must be a positive integer \(got 2.5/,
    );
    expect(() => native.tokenLogprobs({ ...lp, vocabSize: 0 })).toThrow(
      /vocabSize must be a positive integer/,
    );
    expect(() => native.tokenLogprobs({ logits: f32(6), targets: i32(0, 2) } as never)).toThrow(
      /vocabSize is required/,
    );
    expect(() => native.tokenLogprobs({ ...lp, temperature: 0 })).toThrow(/temperature must be > 0/);
    expect(() => native.tokenLogprobs({ ...lp, temperature: Number.NaN })).toThrow(
      /temperature must be finite/,
    );
    expect(() => native.tokenLogprobs({ ...lp, withEntropy: 1 as never })).toThrow(
      /withEntropy must be a boolean/,
    );
  });

  it('tokenLogprobsBackward', () => {
    const lse = f32(2);
    expect(() => native.tokenLogprobsBackward({ ...lp, lse: f32(3), gradLogprobs: f32(2) })).toThrow(
      /lse has 3 elements; expected 2/,
    );
    expect(() => native.tokenLogprobsBackward({ ...lp, lse })).toThrow(
      /give gradLogprobs, gradEntropy or both/,
    );
    expect(() => native.tokenLogprobsBackward({ ...lp, lse, gradLogprobs: f32(1) })).toThrow(
      /gradLogprobs has 1 elements; expected 2/,
    );
    expect(() => native.tokenLogprobsBackward({ ...lp, lse, gradEntropy: f32(2) })).toThrow(
      /gradEntropy needs entropy/,
    );
    expect(() => native.tokenLogprobsBackward({ ...lp, lse, gradLogprobs: f32(2), out: f32(5) })).toThrow(
      /out has 5 elements; expected 6/,
    );
    expect(() =>
      native.tokenLogprobsBackward({ ...lp, lse, gradLogprobs: f32(2), out: f32(6), inPlace: true }),
    ).toThrow(/either inPlace or out/);
  });

  it('fusedLinearLogprobs and its backward', () => {
    const fl = { hidden: f32(8), weight: f32(12), targets: i32(0, 2), hiddenSize: 4 };
    expect(() => native.fusedLinearLogprobs({ ...fl, hidden: f32(9) })).toThrow(
      /hidden has 9 elements; expected 8 \(targets.length \* hiddenSize = 2 \* 4\)/,
    );
    expect(() => native.fusedLinearLogprobs({ ...fl, weight: f32(10) })).toThrow(
      /weight has 10 elements; expected vocabSize \* hiddenSize with hiddenSize = 4/,
    );
    expect(() => native.fusedLinearLogprobs({ ...fl, targets: i32(0, 3) })).toThrow(
      /targets\[1\] = 3 is outside the vocabulary \[0, 3\)/,
    );
    expect(() => native.fusedLinearLogprobs({ ...fl, chunkSize: 0 })).toThrow(
      /chunkSize must be a positive integer/,
    );
    const lse = f32(2);
    expect(() =>
      native.fusedLinearLogprobsBackward({ ...fl, lse, gradLogprobs: f32(2), gradWeight: f32(11) }),
    ).toThrow(/gradWeight has 11 elements; expected 12/);
    expect(() => native.fusedLinearLogprobsBackward({ ...fl, lse: f32(1), gradLogprobs: f32(2) })).toThrow(
      /lse has 1 elements/,
    );
  });

  it('groupAdvantages', () => {
    expect(() => native.groupAdvantages({ rewards: f32(10), groupSize: 4 })).toThrow(
      /rewards has 10 elements, not a multiple of groupSize = 4/,
    );
    expect(() => native.groupAdvantages({ rewards: f32(0), groupSize: 4 })).toThrow(/rewards is empty/);
    expect(() =>
      native.groupAdvantages({ rewards: f32(8), groupSize: 4, scale: 'sequence' as never }),
    ).toThrow(/scale must be one of 'group', 'batch', 'none' \(got 'sequence'\)/);
    expect(() => native.groupAdvantages({ rewards: f32(8), groupSize: 4, eps: -1 })).toThrow(
      /eps must be >= 0/,
    );
    expect(() => native.groupAdvantages({ rewards: f32(8), groupSize: -4 })).toThrow(
      /groupSize must be a positive integer/,
    );
  });

  it('klPenalty', () => {
    expect(() => native.klPenalty({ logprobs: f32(3), refLogprobs: f32(4) })).toThrow(
      /refLogprobs has 4 elements; expected 3/,
    );
    expect(() =>
      native.klPenalty({ logprobs: f32(3), refLogprobs: f32(3), estimator: 'k4' as never }),
    ).toThrow(/estimator must be one of 'k1', 'k2', 'k3', 'abs'/);
    expect(() => native.klPenalty({ logprobs: f32(3), refLogprobs: f32(3), clamp: -1 })).toThrow(
      /clamp must be > 0/,
    );
  });

  it('grpoLoss', () => {
    const g = { logprobs: f32(8), advantages: f32(2), completionMask: f32(8), beta: 0 };
    expect(() => native.grpoLoss({ ...g, logprobs: f32(9) })).toThrow(
      /logprobs has 9 elements, not a multiple of advantages.length = 2/,
    );
    expect(() => native.grpoLoss({ ...g, completionMask: f32(7) })).toThrow(
      /completionMask has 7 elements; expected 8 \(the shape of logprobs \[S, T\] = \[2, 4\]\)/,
    );
    expect(() => native.grpoLoss({ ...g, oldLogprobs: f32(4) })).toThrow(/oldLogprobs has 4 elements/);
    expect(() => native.grpoLoss({ ...g, beta: 0.04 })).toThrow(/refLogprobs is required when beta != 0/);
    expect(() => native.grpoLoss({ ...g, beta: -0.1 })).toThrow(/beta must be >= 0/);
    expect(() => native.grpoLoss({ ...g, beta: undefined as never })).toThrow(/beta is required/);
    expect(() => native.grpoLoss({ ...g, lossType: 'ppo' as never })).toThrow(
      /lossType must be one of 'grpo', 'bnpo', 'dr_grpo', 'dapo'/,
    );
    expect(() => native.grpoLoss({ ...g, epsilonLow: 1 })).toThrow(/epsilonLow must be in \[0, 1\)/);
    expect(() => native.grpoLoss({ ...g, lossType: 'dapo', numItemsInBatch: 0 })).toThrow(
      /numItemsInBatch must be > 0/,
    );
    expect(() => native.grpoLoss({ ...g, advantages: f32(0) })).toThrow(/advantages is empty/);
  });

  it('sgemm, parallelCopy and setNumThreads', () => {
    expect(() => native.parallelCopy({ src: f32(4), dst: f32(3) })).toThrow(/dst has 3 elements; expected 4/);
    expect(() => native.setNumThreads(0)).toThrow(/threads must be an integer in \[1, 4096\]/);
  });
});

describe('loading', () => {
  it('a missing binary explains how to build it', () => {
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)})`,
      ],
      { env: { ...process.env, OTHINK_NATIVE_BINARY: '/nonexistent/othink_native.node' }, encoding: 'utf8' },
    );
    expect(child.status).not.toBe(0);
    expect(child.stderr).toMatch(/compiled addon is missing \(\/nonexistent\/othink_native.node\)/);
    expect(child.stderr).toMatch(/pnpm build/);
  });

  it('reports what it was built with', () => {
    const info = native.buildInfo();
    expect(typeof info.cuda).toBe('boolean');
    expect(info.threads).toBeGreaterThanOrEqual(1);
  });
});

describe('caller-owned outputs', () => {
  it('klPenalty, grpoLoss and groupAdvantages write into `out` buffers and return them', () => {
    const logprobs = Float32Array.of(-1, -2, -0.5, -3);
    const refLogprobs = Float32Array.of(-1.2, -1.5, -0.5, -2);
    const fresh = native.klPenalty({ logprobs, refLogprobs });
    const outValues = new Float32Array(4);
    const outGrads = new Float32Array(4);
    const kl = native.klPenalty({ logprobs, refLogprobs, outValues, outGrads });
    expect(kl.values).toBe(outValues);
    expect(kl.grads).toBe(outGrads);
    expect(Array.from(outValues)).toEqual(Array.from(fresh.values as Float32Array));
    expect(() => native.klPenalty({ logprobs, refLogprobs, outValues: new Float32Array(3) })).toThrow(
      /outValues has 3 elements; expected 4/,
    );
    const g = {
      logprobs,
      refLogprobs,
      advantages: Float32Array.of(1, -1),
      completionMask: new Float32Array(4).fill(1),
      beta: 0.04,
    };
    const outGrad = new Float32Array(4);
    const loss = native.grpoLoss({ ...g, outGrad });
    expect(loss.gradLogprobs).toBe(outGrad);
    expect(Array.from(outGrad)).toEqual(Array.from(native.grpoLoss(g).gradLogprobs as Float32Array));
    const out = new Float32Array(4);
    const adv = native.groupAdvantages({ rewards: Float32Array.of(0, 1, 2, 2), groupSize: 2, out });
    expect(adv.advantages).toBe(out);
    expect(Array.from(out)).toEqual(
      Array.from(
        native.groupAdvantages({ rewards: Float32Array.of(0, 1, 2, 2), groupSize: 2 })
          .advantages as Float32Array,
      ),
    );
  });
});
