// The port vs the float64 reference of Hugging Face's Qwen2-VL (fixtures/qwen2vl-tiny), on the CPU:
// positions exact; activations |x - ref| <= 1e-4 + 1e-4 |ref| where attention_mask == 1; loss within
// 1e-5 relative; every parameter gradient within 1e-3 * max|ref| (+1e-7) (fixtures/README.md
// section 6). The checks live in qwen2vl-fixture.ts, shared with the GPU suite (cuda-model.test.ts).
import { afterAll, describe, it } from 'vitest';
import { Qwen2VLForConditionalGeneration } from '../src/index.js';
import {
  checkForward,
  checkGradients,
  FORWARD_CASES,
  GRADIENT_CASES,
  loadCase,
  TINY_MODEL_DIR,
} from './qwen2vl-fixture.js';

const model = Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR);
afterAll(() => model.dispose());

describe('Qwen2-VL port vs the tiny fixture', () => {
  for (const name of FORWARD_CASES) {
    it(`${name}: embeddings, every layer, logits and loss`, () => {
      checkForward(model, loadCase(name));
    });
  }

  for (const name of GRADIENT_CASES) {
    it(`${name}: the gradient of every parameter`, () => {
      checkGradients(model, loadCase(name));
    });
  }
});
