/**
 * Child-process side of the model benchmark (benchmarks/src/model.ts): our Qwen2-VL port on the
 * small config, in a fresh `node` so that its peak RSS is its own.
 *
 *   node --import tsx --expose-gc model-worker.ts '<ModelWorkerJob json>'
 *
 * 1. Builds the model with `fromConfig` (seeded) and saves it with `savePretrained(job.dir)`.
 * 2. Builds the batch (seeded): `batch` rows of `seqLen` tokens, one image of `imageSize` px each.
 * 3. Writes the inputs and our reference outputs (positions, final hidden states, logits at sampled
 *    positions, per-token log-probs, loss, per-parameter gradient norms and first gradient values,
 *    greedy ids) to `job.dir/inputs.safetensors` for the PyTorch peer to check against.
 * 4. Times forward + backward of the mean cross-entropy (median of `reps` after `warmup`), then
 *    greedy generation with the KV cache, and measures peak memory.
 *
 * Prints one line `@@model <json>` (ModelWorkerResult) on stdout; progress goes to stderr.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInfo, setNumThreads } from '@othink/native';
import {
  generate,
  memoryStats,
  narrow,
  noGrad,
  parseQwen2VLConfig,
  Qwen2VLForConditionalGeneration as Qwen2VL,
  type Qwen2VLForConditionalGeneration,
  type Qwen2VLInputs,
  Random,
  resetPeakMemory,
  scale,
  sumAll,
  Tensor,
  tidy,
  writeSafetensors,
} from '../../packages/core/src/index.js';
import { median, now } from './timing.js';

export interface ModelWorkerJob {
  /** Folder for the checkpoint and the inputs (shared with the PyTorch peer). */
  dir: string;
  seed: number;
  warmup: number;
  reps: number;
  genReps: number;
  batch: number;
  seqLen: number;
  /** Image side in pixels (square); patches = (side / 14)^2, image tokens = patches / 4. */
  imageSize: number;
  newTokens: number;
  /** config.json of the model (HF layout). */
  config: Record<string, unknown>;
  threads?: number;
}

export interface ModelWorkerResult {
  threads: number;
  params: number;
  visionParams: number;
  /** Tokens (batch * seqLen) per forward + backward, and loss targets (image pads excluded). */
  tokens: number;
  targets: number;
  loss: number;
  fwdBwd: { median: number; samples: number[] };
  /** Forward and loss alone (no graph recorded): the share of a step the forward takes. */
  forward: { median: number; samples: number[] };
  gen: { median: number; samples: number[]; newTokens: number };
  /** Native tensor memory high-water mark during forward + backward (bytes). */
  peakTensorBytes: number;
  /** Tensor bytes live before the step (the weights). */
  baseTensorBytes: number;
  /** Process RSS with the model and the batch loaded (before any forward), and its high-water mark over the fwd + bwd runs. */
  rssLoadedBytes: number;
  peakRssFwdBwdBytes: number;
  /** Process RSS high-water mark over the generation runs. */
  peakRssGenBytes: number;
  /** Whether the high-water mark could be restarted before each phase (/proc/self/clear_refs). */
  peakRssReset: boolean;
  peakTensorGenBytes: number;
  generatedIds: number[];
}

export const RESULT_PREFIX = '@@model ';

export interface Batch {
  inputs: Qwen2VLInputs & { pixelValues: Tensor; imageGridThw: Int32Array };
  /** [B, S - 1] next-token targets, -100 at image pads. */
  targets: Int32Array;
  targetCount: number;
}

/**
 * `batch` rows of `seqLen` ids: random text, then `<|vision_start|>`, the image pads,
 * `<|vision_end|>` at a row-dependent offset, then random text (no padding); one image per row.
 */
export function makeBatch(
  config: ReturnType<typeof parseQwen2VLConfig>,
  job: Pick<ModelWorkerJob, 'batch' | 'seqLen' | 'imageSize' | 'seed'>,
): Batch {
  const { batch: b, seqLen: s } = job;
  const v = config.vision;
  const grid = job.imageSize / v.patchSize;
  const patches = grid * grid;
  const imageTokens = patches / (v.spatialMergeSize * v.spatialMergeSize);
  const patchDim = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const random = new Random(job.seed + 17);
  const rand = () => random.next();
  // Plain text ids stay below every special id.
  const specials = [
    config.imageTokenId,
    config.videoTokenId,
    config.visionStartTokenId,
    ...config.eosTokenIds,
  ];
  const textMax = Math.min(...specials, config.text.vocabSize) - 16;
  const ids = new Int32Array(b * s);
  for (let row = 0; row < b; row++) {
    const start = 4 + ((row * 7) % Math.max(1, s - imageTokens - 8));
    for (let i = 0; i < s; i++) ids[row * s + i] = Math.floor(rand() * textMax);
    ids[row * s + start] = config.visionStartTokenId;
    for (let i = 0; i < imageTokens; i++) ids[row * s + start + 1 + i] = config.imageTokenId;
    ids[row * s + start + 1 + imageTokens] = config.visionStartTokenId + 1; // <|vision_end|>
  }
  const pixels = new Float32Array(b * patches * patchDim);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rand() * 4 - 2;
  const grids = new Int32Array(b * 3);
  for (let row = 0; row < b; row++) grids.set([1, grid, grid], row * 3);
  const targets = new Int32Array(b * (s - 1));
  let count = 0;
  for (let row = 0; row < b; row++)
    for (let i = 1; i < s; i++) {
      const id = ids[row * s + i];
      const t = id === config.imageTokenId ? -100 : id;
      targets[row * (s - 1) + i - 1] = t;
      if (t !== -100) count++;
    }
  return {
    inputs: {
      batch: b,
      seqLen: s,
      inputIds: ids,
      attentionMask: new Int32Array(b * s).fill(1),
      pixelValues: Tensor.from(pixels, [b * patches, patchDim]),
      imageGridThw: grids,
    },
    targets,
    targetCount: count,
  };
}

/** Mean cross-entropy of the next-token predictions (image pads ignored), from the final hidden states. */
function lossOf(
  model: Qwen2VLForConditionalGeneration,
  hidden: Tensor,
  batch: Batch,
): { loss: Tensor; logprobs: Tensor } {
  const { batch: b, seqLen: s } = batch.inputs;
  const lp = model.tokenLogprobs(
    narrow(hidden, 1, 0, s - 1),
    Tensor.from(batch.targets, [b, s - 1], { dtype: 'int32' }),
    { ignoreIndex: -100 },
  );
  return { loss: scale(sumAll(lp), -1 / batch.targetCount), logprobs: lp };
}

/** Positions (per row) whose full logits go into the parity file: every 8th and the last. */
export function sampledPositions(seqLen: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < seqLen; i += 8) out.push(i);
  if (out.at(-1) !== seqLen - 1) out.push(seqLen - 1);
  return out;
}

/** How many leading gradient values of each parameter go into the parity file. */
export const GRAD_HEAD = 256;

function f32(values: ArrayLike<number>): Tensor {
  return Tensor.from(Float32Array.from(values), [values.length]);
}

function log(msg: string): void {
  process.stderr.write(`[model-worker] ${msg}\n`);
}

export function runModelWorker(job: ModelWorkerJob): ModelWorkerResult {
  if (job.threads) setNumThreads(job.threads);
  const config = parseQwen2VLConfig(job.config, 'bench config');
  const model = Qwen2VL.fromConfig(config, { seed: job.seed });
  model.savePretrained(job.dir);
  const visionParams = model
    .namedParameters()
    .filter(([n]) => n.startsWith('visual.'))
    .reduce((a, [, p]) => a + p.size, 0);
  const batch = makeBatch(config, job);
  const { batch: b, seqLen: s } = batch.inputs;
  collect();
  const rssLoadedBytes = statusBytes('VmRSS');
  const vocab = config.text.vocabSize;

  // Reference outputs for the PyTorch peer (no grad).
  const positions = sampledPositions(s);
  const ref = tidy(() =>
    noGrad(() => {
      const out = model.forward(batch.inputs);
      const rows: number[] = [];
      for (let row = 0; row < b; row++) for (const p of positions) rows.push(row * s + p);
      const flat = out.hidden.reshape([b * s, config.text.hiddenSize]);
      const picked = Tensor.from(
        rows.flatMap((r) => Array.from(flat.slice(r, r + 1).toFloat32Array())),
        [rows.length, config.text.hiddenSize],
      );
      const logits = model.logits(picked).toFloat32Array();
      const { logprobs } = lossOf(model, out.hidden, batch);
      return {
        hidden: out.hidden.toFloat32Array(),
        positionIds: out.positionIds,
        logits,
        logprobs: logprobs.toFloat32Array(),
      };
    }),
  );

  const params = model.parameters();
  const zeroGrads = () => {
    for (const p of params) p.zeroGrad();
  };
  const step = () =>
    tidy(() => {
      const out = model.forward(batch.inputs);
      const { loss } = lossOf(model, out.hidden, batch);
      const value = loss.item();
      loss.backward();
      return value;
    });

  // Forward + backward: the first (warm-up) step gives the loss and gradients for the parity file.
  collect();
  const baseTensorBytes = memoryStats().currentBytes;
  resetPeakMemory();
  const peakRssReset = resetPeakRss();
  let loss = Number.NaN;
  const gradNorms: number[] = [];
  const gradHeads: number[] = [];
  const samples: number[] = [];
  for (let r = 0; r < job.warmup + job.reps; r++) {
    zeroGrads();
    collect();
    const t0 = now();
    const value = step();
    const t = now() - t0;
    if (r === 0) {
      loss = value;
      for (const [, p] of model.namedParameters()) {
        const g = p.grad ? p.grad.toFloat32Array() : new Float32Array(p.size);
        let ss = 0;
        for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
        gradNorms.push(Math.sqrt(ss));
        for (let i = 0; i < GRAD_HEAD; i++) gradHeads.push(i < g.length ? g[i] : 0);
      }
    }
    if (r >= job.warmup) samples.push(t);
    log(`fwd+bwd ${r < job.warmup ? 'warm-up' : 'run'} ${r}: ${t.toFixed(3)} s`);
  }
  const peakTensorBytes = memoryStats().peakBytes;
  const peakRssFwdBwdBytes = statusBytes('VmHWM');
  zeroGrads();

  // Forward alone (inference mode), for the forward / backward split.
  const fwdSamples: number[] = [];
  for (let r = 0; r < job.warmup + job.reps; r++) {
    collect();
    const t0 = now();
    tidy(() => noGrad(() => lossOf(model, model.forward(batch.inputs).hidden, batch).loss.item()));
    const t = now() - t0;
    if (r >= job.warmup) fwdSamples.push(t);
  }

  // Greedy generation with the KV cache: exactly newTokens per row (no stop id is ever reached).
  const genConfig = {
    doSample: false,
    maxNewTokens: job.newTokens,
    stopTokenIds: [vocab - 1],
    stopWhenAllDone: false,
  };
  let generatedIds: number[] = [];
  const genSamples: number[] = [];
  resetPeakMemory();
  resetPeakRss();
  for (let r = 0; r < job.warmup + job.genReps; r++) {
    collect();
    const t0 = now();
    const out = tidy(() => generate(model, batch.inputs, genConfig));
    const t = now() - t0;
    if (r === 0) generatedIds = Array.from(out.completionIds);
    if (r >= job.warmup) genSamples.push(t);
    log(`generate ${r < job.warmup ? 'warm-up' : 'run'} ${r}: ${t.toFixed(3)} s`);
  }
  const peakTensorGenBytes = memoryStats().peakBytes;
  const peakRssGenBytes = statusBytes('VmHWM');

  // Everything the PyTorch peer checks itself against.
  const inputs: [string, Tensor][] = tidy(() => [
    ['input_ids', f32(batch.inputs.inputIds)],
    ['pixel_values', batch.inputs.pixelValues],
    ['image_grid_thw', f32(batch.inputs.imageGridThw)],
    ['targets', f32(batch.targets)],
    ['ref.position_ids', f32(ref.positionIds)],
    ['ref.hidden', f32(ref.hidden)],
    ['ref.logit_positions', f32(positions)],
    ['ref.logits', f32(ref.logits)],
    ['ref.logprobs', f32(ref.logprobs)],
    ['ref.loss', f32([loss])],
    ['ref.grad_norms', f32(gradNorms)],
    ['ref.grad_heads', f32(gradHeads)],
    ['ref.generated_ids', f32(generatedIds)],
  ]);
  writeSafetensors(join(job.dir, 'inputs.safetensors'), inputs, {
    metadata: {
      param_names: JSON.stringify(model.namedParameters().map(([n]) => n)),
      new_tokens: String(job.newTokens),
      batch: String(b),
      seq_len: String(s),
      grad_head: String(GRAD_HEAD),
    },
  });
  for (const [, t] of inputs) t.dispose();

  const result: ModelWorkerResult = {
    threads: buildInfo().threads,
    params: model.numParameters(),
    visionParams,
    tokens: b * s,
    targets: batch.targetCount,
    loss,
    fwdBwd: { median: median(samples), samples },
    forward: { median: median(fwdSamples), samples: fwdSamples },
    gen: { median: median(genSamples), samples: genSamples, newTokens: b * job.newTokens },
    peakTensorBytes,
    baseTensorBytes,
    rssLoadedBytes,
    peakRssFwdBwdBytes,
    peakRssGenBytes,
    peakRssReset,
    peakTensorGenBytes,
    generatedIds,
  };
  model.dispose();
  return result;
}

function statusBytes(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Restarts the kernel's RSS high-water mark (VmHWM) at the current RSS (Linux >= 4.0). */
function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

// Entry point when run as a child process.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const job = JSON.parse(process.argv[2] ?? '{}') as ModelWorkerJob;
  const result = runModelWorker(job);
  writeFileSync(1, `${RESULT_PREFIX}${JSON.stringify(result)}\n`);
}
