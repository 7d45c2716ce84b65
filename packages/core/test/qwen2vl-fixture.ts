// The tiny-model fixture checks shared by the CPU parity suite (qwen2vl-parity.test.ts) and the GPU
// one (cuda-model.test.ts), so that both hold a model to the same references and tolerances: the
// fixture README's float32 ones (fixtures/README.md section 6) against the float64 references of
// Hugging Face's Qwen2-VL (fixtures/qwen2vl-tiny):
// - positions and rope deltas: exact;
// - activations: |x - ref| <= 1e-4 + 1e-4 |ref| where attention_mask == 1 (padded rows are garbage
//   by design, README section 1);
// - loss: within 1e-5 relative;
// - every parameter gradient: within 1e-3 * max|ref| (+1e-7).
// Each check returns the values it compared, so a caller can also hold two runs to each other.
import { dirname } from 'node:path';
import {
  expectClose,
  expectScalarClose,
  Fixture,
  FORWARD_CASE_FILTER,
  fixtureCases,
  fixtureHeader,
  fixturePath,
  GRADIENT_CASE_FILTER,
  maxAbs,
  type Tolerance,
} from '@othink/testing';
import { expect } from 'vitest';
import {
  narrow,
  noGrad,
  type Qwen2VLForConditionalGeneration,
  type Qwen2VLInputs,
  scale,
  sumAll,
  Tensor,
  tidy,
} from '../src/index.js';

export const TINY_MODEL_DIR = dirname(fixturePath('qwen2vl-tiny/model.safetensors'));
/**
 * Cases with references for the forward, and those that also hold every parameter's gradient: the
 * case files of the fixture set in use, picked by the tensors they hold.
 */
export const FORWARD_CASES = fixtureCases('qwen2vl-tiny', FORWARD_CASE_FILTER);
export const GRADIENT_CASES = fixtureCases('qwen2vl-tiny', GRADIENT_CASE_FILTER);

const imagesIn = (name: string) =>
  fixtureHeader(`qwen2vl-tiny/${name}.safetensors`).get('image_grid_thw')?.shape[0] ?? 0;
/** The forward case with the most images (public set: case-batch), one with a single image (case-single), a text-only one (case-text). */
export const MOST_IMAGES_CASE = [...FORWARD_CASES].sort((a, b) => imagesIn(b) - imagesIn(a))[0];
export const ONE_IMAGE_CASE = FORWARD_CASES.find((name) => imagesIn(name) === 1) ?? MOST_IMAGES_CASE;
export const TEXT_CASE = fixtureCases('qwen2vl-tiny', {
  ...FORWARD_CASE_FILTER,
  without: ['pixel_values'],
})[0];

export const ACTIVATION_TOL: Tolerance = { atol: 1e-4, rtol: 1e-4 };
export const LOSS_TOL: Tolerance = { rtol: 1e-5 };
/** Gradients: per tensor, relative to the largest reference value. */
export function gradientTol(ref: ArrayLike<number>): Tolerance {
  return { atol: 1e-3 * maxAbs(ref) + 1e-7 };
}

export function loadCase(name: string): Fixture {
  return new Fixture(`qwen2vl-tiny/${name}.safetensors`);
}

/** The model inputs of a case, as host arrays (the model uploads them to its device). */
export function inputsOf(f: Fixture): Qwen2VLInputs {
  const [batch, seqLen] = f.shape('input_ids');
  return {
    batch,
    seqLen,
    inputIds: f.i32('input_ids'),
    attentionMask: f.i32('attention_mask'),
    pixelValues: f.has('pixel_values') ? f.f32('pixel_values') : undefined,
    imageGridThw: f.has('image_grid_thw') ? f.i32('image_grid_thw') : undefined,
  };
}

/** The rows of [B, S, width] values where the mask is 1. */
export function unpadded(values: ArrayLike<number>, mask: Int32Array, width: number): number[] {
  const out: number[] = [];
  mask.forEach((m, i) => {
    if (m === 1) for (let j = 0; j < width; j++) out.push(values[i * width + j]);
  });
  return out;
}

/** Mean CE of logits[:, :-1] against labels[:, 1:] over labels != -100, from hidden states. */
export function fixtureLoss(
  model: Qwen2VLForConditionalGeneration,
  hidden: Tensor,
  labels: Int32Array,
  batch: number,
  seqLen: number,
): Tensor {
  const targets = new Int32Array(batch * (seqLen - 1));
  for (let b = 0; b < batch; b++)
    for (let s = 1; s < seqLen; s++) targets[b * (seqLen - 1) + s - 1] = labels[b * seqLen + s];
  const count = targets.filter((t) => t !== -100).length;
  const lp = model.tokenLogprobs(
    narrow(hidden, 1, 0, seqLen - 1),
    Tensor.from(targets, [batch, seqLen - 1], { dtype: 'int32', device: model.device }),
    { ignoreIndex: -100 },
  );
  return scale(sumAll(lp), -1 / count);
}

/** What checkForward compared: each reference's name -> our values (unpadded rows), and the loss. */
export interface ForwardValues {
  activations: Map<string, number[]>;
  loss: number;
}

/**
 * Runs the forward of a case with every layer's hidden states and checks positions, the vision
 * features, the embeddings, every layer, the final norm, the logits and the loss against the
 * references. Every activation must be on the model's device.
 */
export function checkForward(model: Qwen2VLForConditionalGeneration, f: Fixture): ForwardValues {
  const inputs = inputsOf(f);
  const mask = inputs.attentionMask!;
  const h = model.config.text.hiddenSize;
  const v = model.config.text.vocabSize;
  return tidy(() =>
    noGrad(() => {
      const out = model.forward(inputs, { outputHiddenStates: true });
      expect(Array.from(out.positionIds)).toEqual(Array.from(f.i32('position_ids')));
      expect(Array.from(out.ropeDeltas)).toEqual(Array.from(f.i32('rope_deltas')));
      const activations = new Map<string, number[]>();
      const compare = (name: string, t: Tensor, width: number | null) => {
        expect(t.device, `${name} device`).toBe(model.device);
        const got = t.toFloat32Array();
        const ref = f.f64(name);
        const [ours, theirs] =
          width === null
            ? [Array.from(got), Array.from(ref)]
            : [unpadded(got, mask, width), unpadded(ref, mask, width)];
        expectClose(ours, theirs, ACTIVATION_TOL, name);
        activations.set(name, ours);
      };
      expect(out.visionEmbeds !== undefined, 'vision_embeds present').toBe(f.has('vision_embeds'));
      if (out.visionEmbeds) compare('vision_embeds', out.visionEmbeds, null);
      compare('inputs_embeds', out.inputsEmbeds, h);
      expect(out.hiddenStates).toHaveLength(model.config.text.numHiddenLayers);
      out.hiddenStates!.forEach((hs, l) => {
        compare(`hidden.layer.${l}`, hs, h);
      });
      compare('hidden.final_norm', out.hidden, h);
      compare('logits', model.logits(out.hidden), v);
      const lossTensor = fixtureLoss(model, out.hidden, f.i32('labels'), inputs.batch, inputs.seqLen);
      expect(lossTensor.device).toBe(model.device);
      const loss = lossTensor.item();
      expectScalarClose(loss, f.scalar('loss'), LOSS_TOL, 'loss');
      return { activations, loss };
    }),
  );
}

/**
 * Backpropagates a case's loss and checks the gradient of every parameter against the references;
 * every gradient must be on the model's device. Returns the gradients (name -> values) and leaves
 * the parameters without gradients.
 */
export function checkGradients(
  model: Qwen2VLForConditionalGeneration,
  f: Fixture,
): Map<string, Float32Array> {
  const inputs = inputsOf(f);
  for (const p of model.parameters()) p.zeroGrad();
  tidy(() => {
    const out = model.forward(inputs);
    fixtureLoss(model, out.hidden, f.i32('labels'), inputs.batch, inputs.seqLen).backward();
  });
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) {
    const ref = f.f64(`grad.${name}`);
    expect(p.grad, `grad of ${name}`).not.toBeNull();
    expect(p.grad!.device, `grad of ${name} device`).toBe(model.device);
    const g = p.grad!.toFloat32Array();
    expectClose(g, ref, gradientTol(ref), `grad.${name}`);
    grads.set(name, g);
  }
  for (const p of model.parameters()) p.zeroGrad();
  return grads;
}
