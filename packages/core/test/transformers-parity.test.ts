// The port against Hugging Face transformers itself, not our float64 re-implementation of it: the
// reference files come from scripts/transformers_reference.py (run where torch + transformers are
// installed; bash scripts/gpu-check.sh runs both) in the folder OTHINK_HF_REFERENCE.
//
// Tiny model (fixtures/qwen2vl-tiny, transformers in float64, eager attention): for every case the
// script wrote, our logits where attention_mask == 1, the loss and every parameter gradient within
// the fixture README's float32 tolerances (the same bounds as the parity suite: a float32 port vs a
// float64 reference), and greedy ids identical; on the CPU, and on CUDA where a GPU is usable.
//
// Qwen2-VL-2B with random weights (the hub config, bf16 weights) on CUDA in float32: transformers
// ran the same weights in float32 and in bfloat16. Our float32 error against its float32 run must
// be at most a tenth of its own bf16 error against its float32 run, per tensor (max abs): two
// float32 computations of 28 layers differ by summation order only (~1e-6 relative), bf16 rounds
// every product to 8 mantissa bits (~1e-2 relative), so a correct port sits orders of magnitude
// inside the bound, and any real bug (a wrong mask, position, scale, layout) lands far outside it.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '@othink/native';
import {
  expectClose,
  expectScalarClose,
  Fixture,
  gpuUnavailableReason,
  maxAbs,
  maxAbsDiff,
  requireGpu,
} from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Device,
  generate,
  narrow,
  noGrad,
  Qwen2VLForConditionalGeneration,
  tidy,
} from '../src/index.js';
import {
  ACTIVATION_TOL,
  fixtureLoss,
  gradientTol,
  inputsOf,
  LOSS_TOL,
  loadCase,
  TINY_MODEL_DIR,
  unpadded,
} from './qwen2vl-fixture.js';

const refDir = process.env.OTHINK_HF_REFERENCE;
const gpuReason = gpuUnavailableReason(native);
const devices: Device[] = gpuReason === null ? ['cpu', 'cuda'] : ['cpu'];
const noReference = !refDir || !existsSync(refDir);
const skipReason = !refDir
  ? 'OTHINK_HF_REFERENCE is not set (make it with scripts/transformers_reference.py)'
  : `OTHINK_HF_REFERENCE=${refDir} does not exist`;

/** The cases transformers wrote (tiny-<case>.safetensors) whose inputs the fixture set holds. */
function tinyCases(): string[] {
  if (noReference) return [];
  return readdirSync(refDir!)
    .filter((f) => /^tiny-case-.*\.safetensors$/.test(f))
    .map((f) => f.slice('tiny-'.length, -'.safetensors'.length))
    .sort();
}

const suite = noReference ? describe.skip : describe;
const title = (name: string) => (noReference ? `${name} (skipped: ${skipReason})` : name);

suite(title('the tiny model vs transformers'), () => {
  it('the reference folder holds tiny cases', () => {
    expect(tinyCases().length).toBeGreaterThan(0);
  });

  for (const device of devices) {
    const model = noReference
      ? undefined
      : Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR, { device });
    afterAll(() => model?.dispose());

    for (const name of tinyCases()) {
      it(`${name} on ${device}: logits, loss, gradients / greedy ids`, () => {
        const hf = new Fixture(join(refDir!, `tiny-${name}.safetensors`));
        const f = loadCase(name);
        const inputs = inputsOf(f);
        if (hf.has('generated_ids')) {
          const n = hf.shape('generated_ids')[1];
          const out = tidy(() =>
            generate(model!, inputs, {
              doSample: false,
              maxNewTokens: n,
              stopTokenIds: [model!.config.text.vocabSize - 1], // as the script: never stop early
              stopWhenAllDone: false,
            }),
          );
          expect(Array.from(out.completionIds)).toEqual(Array.from(hf.i32('generated_ids')));
          return;
        }
        const mask = inputs.attentionMask!;
        const v = model!.config.text.vocabSize;
        const withGrads = [...hf.tensors.keys()].some((k) => k.startsWith('grad.'));
        for (const p of model!.parameters()) p.zeroGrad();
        tidy(() => {
          const run = () => {
            const out = model!.forward(inputs);
            const logits = model!.logits(out.hidden).toFloat32Array();
            expectClose(
              unpadded(logits, mask, v),
              unpadded(hf.f64('logits'), mask, v),
              ACTIVATION_TOL,
              `${name} logits`,
            );
            const loss = fixtureLoss(model!, out.hidden, f.i32('labels'), inputs.batch, inputs.seqLen);
            expectScalarClose(loss.item(), hf.scalar('loss'), LOSS_TOL, `${name} loss`);
            return loss;
          };
          if (withGrads) run().backward();
          else noGrad(run);
        });
        if (!withGrads) return;
        for (const [param, p] of model!.namedParameters()) {
          const ref = hf.f64(`grad.${param}`);
          expect(p.grad?.device, `grad of ${param}`).toBe(device);
          expectClose(p.grad!.toFloat32Array(), ref, gradientTol(ref), `${name} grad.${param}`);
          p.zeroGrad();
        }
      });
    }
  }
});

const bigDir = refDir ? join(refDir, 'qwen2vl-2b-random') : '';
const bigSkip = noReference
  ? skipReason
  : !existsSync(bigDir)
    ? `${bigDir} does not exist (scripts/transformers_reference.py --big)`
    : gpuReason;
const bigSuite = bigSkip === null ? describe : describe.skip;
if (bigSkip !== null && requireGpu && gpuReason !== null && !noReference) {
  // A GPU machine must not pass by skipping the 2B check it was given the files for.
  describe('Qwen2-VL-2B (random weights) vs transformers on CUDA', () => {
    it('has a GPU', () => {
      throw new Error(`OTHINK_REQUIRE_GPU=1, but ${gpuReason}`);
    });
  });
}

bigSuite(
  bigSkip === null
    ? 'Qwen2-VL-2B (random weights) vs transformers on CUDA'
    : `Qwen2-VL-2B (random weights) vs transformers on CUDA (skipped: ${bigSkip})`,
  () => {
    it('float32: loss, last logits and gradients 10x closer to transformers fp32 than its bf16 run', () => {
      const inputs = new Fixture(join(refDir!, 'big-inputs.safetensors'));
      const fp32 = new Fixture(join(refDir!, 'big-float32.safetensors'));
      const bf16 = new Fixture(join(refDir!, 'big-bfloat16.safetensors'));
      const model = Qwen2VLForConditionalGeneration.fromPretrained(bigDir, { device: 'cuda' });
      try {
        const x = inputsOf(inputs);
        const report: string[] = [];
        const bound = (what: string, ours: ArrayLike<number>) => {
          const err = maxAbsDiff(ours, fp32.f64(what)).diff;
          const yardstick = maxAbsDiff(bf16.f64(what), fp32.f64(what)).diff;
          report.push(
            `${what}: ${err.toExponential(2)} (bf16 ${yardstick.toExponential(2)}, max ${maxAbs(fp32.f64(what)).toExponential(2)})`,
          );
          expect(err, `${what}: our fp32 error vs transformers' bf16 error ${yardstick}`).toBeLessThanOrEqual(
            0.1 * yardstick,
          );
        };
        tidy(() => {
          const out = model.forward(x);
          const last = narrow(out.hidden, 1, x.seqLen - 8, 8);
          bound('logits_last8', noGrad(() => model.logits(last)).toFloat32Array());
          const loss = fixtureLoss(model, out.hidden, inputs.i32('labels'), x.batch, x.seqLen);
          bound('loss', [loss.item()]);
          loss.backward();
        });
        const params = new Map(model.namedParameters());
        for (const key of fp32.tensors.keys()) {
          if (!key.startsWith('grad.')) continue;
          const p = params.get(key.slice('grad.'.length));
          expect(p?.grad, key).toBeTruthy();
          bound(key, p!.grad!.toFloat32Array());
        }
        console.log(
          `2B fp32 vs transformers (max abs error; transformers bf16 vs fp32; max |ref|):\n  ${report.join('\n  ')}`,
        );
      } finally {
        model.dispose();
      }
    });
  },
);
