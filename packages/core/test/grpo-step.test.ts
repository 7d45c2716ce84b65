// Two full GRPO-D optimizer steps on the tiny model vs fixtures/grpo-step (fixtures/README.md
// section 5): policy log-probs from a full forward, the fused GRPO loss with the dynamic KL weight,
// backward, global-norm clipping and AdamW. Tolerances from section 6: loss within
// 1e-5 + 1e-4 |ref|, grad norm within 1e-4 relative, updated parameters: >= 99.9% of elements
// within 1e-6 and every element within lr / 2.
import { dirname } from 'node:path';
import { expectClose, expectScalarClose, Fixture, fixturePath, maxAbs } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  gradNorm,
  groupAdvantages,
  grpoLoss,
  klSchedule,
  narrow,
  noGrad,
  Qwen2VLForConditionalGeneration,
  Tensor,
  tidy,
} from '../src/index.js';

const f = new Fixture('grpo-step/grpo-step.safetensors');
const model = Qwen2VLForConditionalGeneration.fromPretrained(
  dirname(fixturePath('grpo-step/model.safetensors')),
);
afterAll(() => model.dispose());

const [G, seqLen] = f.shape('input_ids');
const C = f.shape('completion_ids')[1];
const P = f.scalar('prompt_length');
const inputs = {
  batch: G,
  seqLen,
  inputIds: f.i32('input_ids'),
  attentionMask: f.i32('attention_mask'),
  pixelValues: Tensor.from(f.f32('pixel_values'), f.shape('pixel_values')),
  imageGridThw: f.i32('image_grid_thw'),
};

/** Per-token log-probs of the completion: hidden states P-1 .. P+C-2 predict completion tokens 0 .. C-1. */
function policyLogprobs(): Tensor {
  const out = model.forward(inputs);
  const hidden = narrow(out.hidden, 1, P - 1, C);
  return model.tokenLogprobs(hidden, Tensor.from(f.i32('completion_ids'), [G, C], { dtype: 'int32' }));
}

function checkParams(step: number): void {
  const lr = f.scalar('lr');
  let total = 0;
  let within = 0;
  for (const [name, p] of model.namedParameters()) {
    const ref = f.f64(`step${step}.param.${name}`);
    expectClose(p.toFloat32Array(), ref, { atol: lr / 2 }, `${name} after step ${step}`);
    const got = p.toFloat32Array();
    for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - ref[i]) <= 1e-6) within++;
    total += got.length;
  }
  expect(within / total).toBeGreaterThanOrEqual(0.999);
}

describe('a GRPO-D step on the tiny model (fixture grpo-step)', () => {
  const schedule = klSchedule.dynamic({
    min: f.scalar('beta_min'),
    max: f.scalar('beta_max'),
    exploreFraction: f.scalar('explore_frac'),
  });
  const total = f.scalar('total_steps');
  const optimizer = new AdamW(model.parameters(), {
    lr: f.scalar('lr'),
    betas: [f.scalar('adam_beta1'), f.scalar('adam_beta2')],
    eps: f.scalar('adam_eps'),
    weightDecay: f.scalar('weight_decay'),
  });
  afterAll(() => optimizer.dispose());
  const advantages = f.f32('advantages');

  it('advantages from the rewards', () => {
    const { advantages: a } = groupAdvantages({
      rewards: f.f32('rewards'),
      groupSize: f.scalar('num_generations'),
    });
    expectClose(a, f.f64('advantages'), { atol: 1e-6, rtol: 1e-6 }, 'advantages');
  });

  for (const step of [1, 2]) {
    it(`step ${step}: beta, log-probs, loss, gradients, grad norm and updated weights`, () => {
      const s = f.scalar(`step${step}.global_step`);
      const beta = schedule.betaAt(s, total);
      expectScalarClose(beta, f.scalar(`step${step}.beta`), { atol: 1e-12 }, 'beta');
      optimizer.zeroGrad();
      const { loss, meanKl, grads } = tidy(() => {
        const lp = policyLogprobs();
        expectClose(
          lp.toFloat32Array(),
          f.f64(`step${step}.per_token_logps`),
          { atol: 1e-4, rtol: 1e-4 },
          'per_token_logps',
        );
        // num_iterations = 1: the old policy is the current one (ratio 1).
        const old = noGrad(() => lp.toFloat32Array());
        const out = grpoLoss({
          logprobs: lp.toFloat32Array(),
          oldLogprobs: old,
          refLogprobs: f.f32('ref_per_token_logps'),
          advantages,
          completionMask: f.f32('completion_mask'),
          beta,
          epsilonLow: f.scalar('epsilon_low'),
          epsilonHigh: f.scalar('epsilon_high'),
          lossType: 'grpo',
        });
        lp.backward(Tensor.from(out.gradLogprobs as Float32Array, lp.shape));
        return {
          loss: out.loss,
          meanKl: out.stats.meanKl,
          grads:
            step === 1 ? model.namedParameters().map(([n, p]) => [n, p.grad!.toFloat32Array()] as const) : [],
        };
      });
      const refLoss = f.scalar(`step${step}.loss`);
      expect(Math.abs(loss - refLoss)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(refLoss));
      expectScalarClose(
        meanKl,
        f.scalar(`step${step}.metric.mean_kl`),
        { rtol: 1e-4, atol: 1e-7 },
        'mean KL',
      );
      for (const [name, g] of grads) {
        const ref = f.f64(`step1.grad.${name}`);
        expectClose(g, ref, { atol: 1e-3 * maxAbs(ref) + 1e-7 }, `step1.grad.${name}`);
      }
      const norm = gradNorm(model.parameters(), f.scalar('max_grad_norm'));
      expectScalarClose(norm.totalNorm, f.scalar(`step${step}.grad_norm`), { rtol: 1e-4 }, 'grad_norm');
      expectScalarClose(norm.clipCoef, f.scalar(`step${step}.clip_coef`), { rtol: 1e-4 }, 'clip_coef');
      optimizer.update({ gradScale: norm.clipCoef });
      checkParams(step);
    });
  }
});
