// A GRPO-D step of Qwen2-VL-2B on one GPU, at the size the issue sets: 4 prompts x G = 8
// completions of 256 tokens, one 448x448 image per prompt (a 32x32 patch grid, 256 image tokens),
// gradient checkpointing on, the frozen reference policy beside the trained one. Random weights
// (HF init from the hub config) and a toy verifiable reward (the share of even token ids), so it
// needs no checkpoint, tokenizer or images on disk. The stop id is an unused vocabulary row, so
// every completion runs the full 256 tokens: the step's worst case for memory.
//
// Checks: two steps run, the loss is finite, and the memory the caching allocator holds from the
// driver stays under 78 GiB, so the step also fits an 80 GB H100 (79.6 GiB visible, minus the CUDA
// context and library workspaces). Prints the time and peak memory of each step.
//
// Runs on a GPU with at least 80 GB; skipped elsewhere with the reason (under OTHINK_REQUIRE_GPU=1
// a smaller GPU still skips: the check is about the 80 GB class, not about the install).
import { readFileSync } from 'node:fs';
import * as native from '@othink/native';
import { describeGpu } from '@othink/testing';
import { expect, it } from 'vitest';
import {
  GRPOTrainer,
  type GrpoConfig,
  type PromptBatchLike,
  parseQwen2VLConfig,
  Qwen2VLForConditionalGeneration,
  type StepMetrics,
  type TrainDataAdapter,
} from '../src/index.js';

const GIB = 2 ** 30;
const totalMemory = native.cuda?.deviceInfo().totalMemory ?? 0;
const big = totalMemory >= 79 * GIB;

const configJson = JSON.parse(
  readFileSync(new URL('./data/qwen2vl-2b-config.json', import.meta.url), 'utf8'),
) as Record<string, number>;
const GRID = 32; // 448 / 14 patches a side
const PATCH_DIM = 3 * 2 * 14 * 14;

/** A prompt: chat framing around one image's placeholder run and a few random text ids. */
interface Sample {
  text: number[];
  pixels: Float32Array;
}

function makeSample(seed: number): Sample {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const text = Array.from({ length: 24 }, () => Math.floor(next() * 151_000));
  const pixels = Float32Array.from({ length: GRID * GRID * PATCH_DIM }, () => 2 * next() - 1);
  return { text, pixels };
}

const c = configJson;
const data: TrainDataAdapter<Sample> = {
  encodePrompts(batch: Sample[]): PromptBatchLike {
    const rows = batch.map((x) => [
      151644, // <|im_start|>
      ...x.text.slice(0, 12),
      c.vision_start_token_id,
      ...new Array<number>((GRID / 2) ** 2).fill(c.image_token_id),
      c.vision_end_token_id,
      ...x.text.slice(12),
      151645, // <|im_end|>
      151644,
    ]);
    const seqLen = Math.max(...rows.map((r) => r.length));
    const inputIds = new Int32Array(batch.length * seqLen).fill(151643);
    const attentionMask = new Int32Array(batch.length * seqLen);
    rows.forEach((r, b) => {
      inputIds.set(r, b * seqLen + seqLen - r.length);
      attentionMask.fill(1, b * seqLen + seqLen - r.length, (b + 1) * seqLen);
    });
    const pixelValues = new Float32Array(batch.length * GRID * GRID * PATCH_DIM);
    batch.forEach((x, b) => {
      pixelValues.set(x.pixels, b * x.pixels.length);
    });
    return {
      batchSize: batch.length,
      seqLen,
      inputIds,
      attentionMask,
      pixelValues,
      patchDim: PATCH_DIM,
      imageGridThw: Int32Array.from(batch.flatMap(() => [1, GRID, GRID])),
      imagesPerRow: new Int32Array(batch.length).fill(1),
    };
  },
  encodeSft() {
    throw new Error('this test trains GRPO only');
  },
  decode: (ids) => Array.from(ids).join(' '),
  promptText: (x) => `${x.text.length} ids + image`,
  stopTokenIds: [c.vocab_size - 1], // never sampled in practice: full-length completions
  padTokenId: 151643,
};

const rewards = async (completions: string[]) => {
  const total = completions.map((t) => {
    const ids = t.split(' ').map(Number);
    return ids.filter((id) => id % 2 === 0).length / Math.max(ids.length, 1);
  });
  return { total, perFunction: { even: total } };
};

const config: GrpoConfig = {
  maxSteps: 2,
  learningRate: 1e-6,
  lrSchedulerType: 'constant',
  warmupSteps: 0,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  maxGradNorm: 1,
  perDeviceTrainBatchSize: 8,
  gradientAccumulationSteps: 4,
  gradientCheckpointing: true,
  seed: 1,
  numGenerations: 8,
  promptsPerStep: 4,
  maxCompletionLength: 256,
  temperature: 1,
  topK: 0,
  topP: 1,
  beta: { type: 'dynamic', betaMin: 0, betaMax: 0.02, exploreFraction: 0.3 },
  epsilon: 0.2,
  epsilonHigh: 0.2,
  numIterations: 1,
  lossType: 'grpo',
  scaleRewards: 'group',
  klEstimator: 'k3',
};

describeGpu(native, 'Qwen2-VL-2B GRPO-D step on one GPU', () => {
  it.skipIf(!big)(
    `4 prompts x 8 completions x 256 tokens, 448x448 images: fits in 80 GB${big ? '' : ` (skipped: the GPU has ${(totalMemory / GIB).toFixed(0)} GiB, under 80 GB)`}`,
    async () => {
      const model = Qwen2VLForConditionalGeneration.fromConfig(
        parseQwen2VLConfig(configJson, 'qwen2vl-2b-config.json'),
        { device: 'cuda', seed: 0 },
      );
      const steps: { metrics: StepMetrics; seconds: number }[] = [];
      let last = performance.now();
      const trainer = new GRPOTrainer({
        model,
        data,
        train: Array.from({ length: 8 }, (_, i) => makeSample(i + 1)),
        config,
        rewards,
        callbacks: {
          onStep: (m) => {
            const now = performance.now();
            steps.push({ metrics: m, seconds: (now - last) / 1000 });
            last = now;
          },
        },
        warn: (m) => console.warn(m),
      });
      try {
        await trainer.train();
      } finally {
        trainer.dispose();
        model.dispose();
      }
      expect(steps).toHaveLength(2);
      for (const { metrics, seconds } of steps) {
        console.log(
          `2B GRPO-D step ${metrics.step}: ${seconds.toFixed(1)} s, loss ${metrics.loss}, ` +
            `completion length ${metrics.completion_length}, peak allocated ${metrics['perf/max_memory_allocated_gb']?.toFixed(1)} GiB, ` +
            `reserved ${metrics['perf/memory_reserved_gb']?.toFixed(1)} GiB`,
        );
        expect(Number.isFinite(metrics.loss)).toBe(true);
        expect(metrics['perf/memory_reserved_gb']).toBeLessThan(78);
      }
    },
    3_600_000,
  );
});
