// Qwen2-VL on a GPU: the tiny fixture model loaded straight onto 'cuda' against the float64
// references, with the same checks and float32 tolerances as the CPU parity suite (shared in
// qwen2vl-fixture.ts; fixtures/README.md section 6): positions exact, the vision features, the
// embeddings, every layer's hidden states, the final norm and the logits within 1e-4 + 1e-4 |ref|
// where attention_mask == 1, the loss within 1e-5 relative, every parameter gradient within
// 1e-3 * max|ref| + 1e-7; every activation and gradient on the GPU.
//
// Then the CPU and the GPU runs against each other with those same bounds, the CPU's values as the
// reference: each run is a float32 computation within ~3e-5 of float64 (README section 6 measured
// logits 3.0e-05, hidden 2.0e-05, gradients 1.3e-05 of their maximum), so two correct ones differ
// by well under the bound, while a device-specific bug (a wrong mask, a missed upload, TF32
// matmuls, README section 6) exceeds it.
//
// Runs where a CUDA build sees a GPU; skipped elsewhere with the reason, failing instead under
// OTHINK_REQUIRE_GPU=1. The loss goes through the model's LM-head log-probs, so it needs their
// CUDA path too.
import * as native from '@othink/native';
import { describeGpu, expectClose, expectScalarClose } from '@othink/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Qwen2VLForConditionalGeneration } from '../src/index.js';
import {
  ACTIVATION_TOL,
  checkForward,
  checkGradients,
  FORWARD_CASES,
  type ForwardValues,
  GRADIENT_CASES,
  gradientTol,
  LOSS_TOL,
  loadCase,
  TINY_MODEL_DIR,
} from './qwen2vl-fixture.js';

describeGpu(native, 'Qwen2-VL on CUDA vs the tiny fixture and the CPU', () => {
  let onCpu: Qwen2VLForConditionalGeneration;
  let onGpu: Qwen2VLForConditionalGeneration;
  beforeAll(() => {
    onCpu = Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR);
    onGpu = Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR, { device: 'cuda' });
  });
  afterAll(() => {
    onCpu?.dispose();
    onGpu?.dispose();
  });

  it('fromPretrained({ device: "cuda" }) loads every weight onto the GPU, bit for bit', () => {
    expect(onGpu.device).toBe('cuda');
    const cpu = onCpu.namedParameters();
    onGpu.namedParameters().forEach(([name, p], i) => {
      expect(p.device, name).toBe('cuda');
      expect(p.toFloat32Array(), name).toEqual(cpu[i][1].toFloat32Array());
    });
  });

  const agree = (gpu: ForwardValues, cpu: ForwardValues) => {
    expect([...gpu.activations.keys()]).toEqual([...cpu.activations.keys()]);
    for (const [name, values] of gpu.activations)
      expectClose(values, cpu.activations.get(name)!, ACTIVATION_TOL, `${name}: cuda vs cpu`);
    expectScalarClose(gpu.loss, cpu.loss, LOSS_TOL, 'loss: cuda vs cpu');
  };

  for (const name of FORWARD_CASES) {
    it(`${name}: every activation, the logits and the loss on CUDA, and as on the CPU`, () => {
      const f = loadCase(name);
      agree(checkForward(onGpu, f), checkForward(onCpu, f));
    });
  }

  for (const name of GRADIENT_CASES) {
    it(`${name}: the gradient of every parameter on CUDA, and as on the CPU`, () => {
      const f = loadCase(name);
      const gpu = checkGradients(onGpu, f);
      const cpu = checkGradients(onCpu, f);
      expect([...gpu.keys()]).toEqual([...cpu.keys()]);
      for (const [param, g] of gpu) {
        const ref = cpu.get(param)!;
        expectClose(g, ref, gradientTol(ref), `grad.${param}: cuda vs cpu`);
      }
    });
  }
});
