// The port vs the float64 reference of Hugging Face's Qwen2-VL (fixtures/qwen2vl-tiny): positions
// exact; activations |x - ref| <= 1e-4 + 1e-4 |ref| where attention_mask == 1; loss within 1e-5
// relative; every parameter gradient within 1e-3 * max|ref| (+1e-7) (fixtures/README.md section 6).
import { dirname } from 'node:path';
import { expectClose, expectScalarClose, Fixture, fixturePath, maxAbs } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  narrow,
  noGrad,
  Qwen2VLForConditionalGeneration,
  scale,
  sumAll,
  Tensor,
  tidy,
} from '../src/index.js';

const modelDir = dirname(fixturePath('qwen2vl-tiny/model.safetensors'));
const model = Qwen2VLForConditionalGeneration.fromPretrained(modelDir);
afterAll(() => model.dispose());

const ACT = { atol: 1e-4, rtol: 1e-4 };

function inputsOf(f: Fixture) {
  const [batch, seqLen] = f.shape('input_ids');
  return {
    batch,
    seqLen,
    inputIds: f.i32('input_ids'),
    attentionMask: f.i32('attention_mask'),
    pixelValues: f.has('pixel_values')
      ? Tensor.from(f.f32('pixel_values'), f.shape('pixel_values'))
      : undefined,
    imageGridThw: f.has('image_grid_thw') ? f.i32('image_grid_thw') : undefined,
  };
}

/** The rows of [B, S, H] values where the mask is 1 (padded positions are garbage by design). */
function unpadded(values: ArrayLike<number>, mask: Int32Array, width: number): number[] {
  const out: number[] = [];
  mask.forEach((m, i) => {
    if (m === 1) for (let j = 0; j < width; j++) out.push(values[i * width + j]);
  });
  return out;
}

/** Mean CE of logits[:, :-1] against labels[:, 1:] over labels != -100, from hidden states. */
function loss(hidden: Tensor, labels: Int32Array, batch: number, seqLen: number): Tensor {
  const targets = new Int32Array(batch * (seqLen - 1));
  for (let b = 0; b < batch; b++)
    for (let s = 1; s < seqLen; s++) targets[b * (seqLen - 1) + s - 1] = labels[b * seqLen + s];
  const count = targets.filter((t) => t !== -100).length;
  const lp = model.tokenLogprobs(
    narrow(hidden, 1, 0, seqLen - 1),
    Tensor.from(targets, [batch, seqLen - 1], { dtype: 'int32' }),
    { ignoreIndex: -100 },
  );
  return scale(sumAll(lp), -1 / count);
}

describe('Qwen2-VL port vs the tiny fixture', () => {
  for (const name of ['case-single', 'case-batch', 'case-text']) {
    it(`${name}: embeddings, every layer, logits and loss`, () => {
      const f = new Fixture(`qwen2vl-tiny/${name}.safetensors`);
      const inputs = inputsOf(f);
      const h = model.config.text.hiddenSize;
      tidy(() =>
        noGrad(() => {
          const out = model.forward(inputs, { outputHiddenStates: true });
          expect(Array.from(out.positionIds)).toEqual(Array.from(f.i32('position_ids')));
          expect(Array.from(out.ropeDeltas)).toEqual(Array.from(f.i32('rope_deltas')));
          if (out.visionEmbeds)
            expectClose(out.visionEmbeds.toFloat32Array(), f.f64('vision_embeds'), ACT, 'vision_embeds');
          const mask = inputs.attentionMask;
          expectClose(
            unpadded(out.inputsEmbeds.toFloat32Array(), mask, h),
            unpadded(f.f64('inputs_embeds'), mask, h),
            ACT,
            'inputs_embeds',
          );
          out.hiddenStates!.forEach((hs, l) => {
            expectClose(
              unpadded(hs.toFloat32Array(), mask, h),
              unpadded(f.f64(`hidden.layer.${l}`), mask, h),
              ACT,
              `hidden.layer.${l}`,
            );
          });
          expectClose(
            unpadded(out.hidden.toFloat32Array(), mask, h),
            unpadded(f.f64('hidden.final_norm'), mask, h),
            ACT,
            'hidden.final_norm',
          );
          const v = model.config.text.vocabSize;
          expectClose(
            unpadded(model.logits(out.hidden).toFloat32Array(), mask, v),
            unpadded(f.f64('logits'), mask, v),
            ACT,
            'logits',
          );
          const l = loss(out.hidden, f.i32('labels'), inputs.batch, inputs.seqLen).item();
          expectScalarClose(l, f.scalar('loss'), { rtol: 1e-5 }, 'loss');
        }),
      );
    });
  }

  for (const name of ['case-single', 'case-batch']) {
    it(`${name}: the gradient of every parameter`, () => {
      const f = new Fixture(`qwen2vl-tiny/${name}.safetensors`);
      const inputs = inputsOf(f);
      for (const p of model.parameters()) p.zeroGrad();
      tidy(() => {
        const out = model.forward(inputs);
        loss(out.hidden, f.i32('labels'), inputs.batch, inputs.seqLen).backward();
      });
      for (const [pname, p] of model.namedParameters()) {
        const ref = f.f64(`grad.${pname}`);
        expect(p.grad, `grad of ${pname}`).not.toBeNull();
        expectClose(p.grad!.toFloat32Array(), ref, { atol: 1e-3 * maxAbs(ref) + 1e-7 }, `grad.${pname}`);
      }
      for (const p of model.parameters()) p.zeroGrad();
    });
  }
});
