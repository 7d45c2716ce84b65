/**
 * Model benchmark: the small Qwen2-VL of the "Qwen2-VL port" issue on the CPU, ours next to the
 * same model in PyTorch (float32, eager, OpenBLAS), in the same run:
 *
 *   LLM 256 wide x 4 layers (4 heads of 64, 2 kv heads, SwiGLU 1024, tied LM head over a
 *   vocabulary of 8192; OTHINK_BENCH_VOCAB=151936 gives Qwen's own, where the LM head dominates),
 *   vision 128 wide x 4 blocks (4 heads of 32), merger to 256;
 *   a batch of 8 rows x 123 tokens, one 112 x 112 image per row (64 patches -> 16 image tokens).
 *
 * Our side runs in a fresh `node` child (model-worker.ts: its peak RSS is its own): it builds the
 * model with `fromConfig` (seeded), saves it with `savePretrained`, writes the batch and our outputs,
 * and times forward + backward of the mean cross-entropy, the forward alone, and greedy generation
 * (8 prompts x 32 new tokens, KV cache). Then benchmarks/python/qwen2vl_torch.py loads the same
 * checkpoint and inputs, checks parity (logits within 1e-3, positions, log-probs, loss, gradients,
 * greedy ids) before timing anything, and times the same three things. Skipped with a note when no
 * `python3` imports torch (`apt-get install python3-torch libopenblas0-pthread`).
 *
 * Rows: `{ name, ours, pytorch, unit, ratio }`, ratio = ours / pytorch (speed rows: > 1 is ours
 * faster; memory rows: < 1 is ours smaller). Times are medians of the timed runs after a warm-up.
 *
 * Both sides use 2 threads (OMP_NUM_THREADS overrides) and OMP_WAIT_POLICY=PASSIVE (our addon's
 * default; PyTorch gets the same, unless the variable is set: spinning OpenMP threads made it
 * several times slower on this loaded 2-core machine). Full runs do 2 rounds of [ours, PyTorch] and
 * pool each side's samples (OTHINK_BENCH_ROUNDS overrides); OTHINK_PYTHON picks the interpreter.
 *
 *   tsx benchmarks/src/model.ts [--quick]      the section alone (prints the rows as a table)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelWorkerJob, ModelWorkerResult } from './model-worker.js';
import { spawnJob } from './spawn-job.js';

export interface ModelBenchRow {
  name: string;
  ours: number | string | null;
  pytorch: number | string | null;
  unit: string;
  /** ours / pytorch. */
  ratio: number | null;
}

const workerPath = fileURLToPath(new URL('./model-worker.ts', import.meta.url));
const torchScript = fileURLToPath(new URL('../python/qwen2vl_torch.py', import.meta.url));
const RESULT_PREFIX = '@@model ';
const TORCH_PREFIX = '@@torch ';

/** Qwen2-VL's vocabulary (spec 1.1), with its special ids at 151643.. (spec 6.2). */
const QWEN_VOCAB = 151936;
/** Default vocabulary of the small config: small enough that the LM head does not dominate (OTHINK_BENCH_VOCAB overrides). */
export const SMALL_VOCAB = 8192;

/** The small config (HF config.json layout). */
export function smallConfig(vocabSize = QWEN_VOCAB): Record<string, unknown> {
  // Special ids: Qwen's own with the Qwen vocabulary, else the same layout at the top of the vocabulary.
  const base = vocabSize === QWEN_VOCAB ? 151643 : vocabSize - 16;
  return {
    architectures: ['Qwen2VLForConditionalGeneration'],
    model_type: 'qwen2_vl',
    vocab_size: vocabSize,
    hidden_size: 256,
    intermediate_size: 1024,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    rope_scaling: { type: 'mrope', mrope_section: [8, 12, 12] },
    max_position_embeddings: 32768,
    tie_word_embeddings: true,
    bos_token_id: base,
    eos_token_id: base + 2,
    vision_start_token_id: base + 9,
    vision_end_token_id: base + 10,
    vision_token_id: base + 11,
    image_token_id: base + 12,
    video_token_id: base + 13,
    torch_dtype: 'float32',
    vision_config: {
      depth: 4,
      embed_dim: 128,
      num_heads: 4,
      mlp_ratio: 4,
      in_chans: 3,
      hidden_size: 256,
      patch_size: 14,
      spatial_merge_size: 2,
      temporal_patch_size: 2,
    },
  };
}

function log(msg: string): void {
  process.stderr.write(`[model] ${msg}\n`);
}

/** Runs our side in a fresh node (this process's tsx loader, --expose-gc). */
function runWorker(job: ModelWorkerJob): Promise<ModelWorkerResult> {
  return spawnJob<ModelWorkerResult>(workerPath, job, RESULT_PREFIX, 'model worker');
}

/** The first interpreter that imports torch: $OTHINK_PYTHON, python3, /usr/bin/python3 (Debian's). */
export function findTorchPython(): { python: string | null; tried: string[] } {
  const candidates = [process.env.OTHINK_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (p, i, a): p is string => !!p && a.indexOf(p) === i,
  );
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return { python, tried: candidates };
  }
  return { python: null, tried: candidates };
}

interface TorchResult {
  torch: string;
  threads: number;
  blas: string;
  ompWaitPolicy: string | null;
  parity: {
    ok: boolean;
    positionsEqual: boolean;
    hiddenMaxAbs: number;
    logitsMaxAbs: number;
    logitsMaxAbsRef: number;
    logprobsMaxAbs: number;
    loss: number;
    lossAbsDiff: number;
    gradNormMaxRelDiff: number;
    gradNormWorstParam: string | null;
    gradHeadMaxRelDiff: number;
    generatedEqual: number;
    generatedTotal: number;
    generatedFirstDiff: number[];
  };
  tokens?: number;
  fwdBwd?: { median: number; samples: number[] };
  forward?: { median: number; samples: number[] };
  gen?: { median: number; samples: number[]; newTokens: number };
  rssLoadedBytes?: number;
  peakRssFwdBwdBytes?: number;
  peakRssGenBytes?: number;
}

function runTorch(
  python: string,
  dir: string,
  opts: { warmup: number; reps: number; genReps: number; threads: number },
): Promise<{ result: TorchResult | null; code: number | null; tail: string }> {
  return new Promise((resolve, reject) => {
    const args = [
      torchScript,
      dir,
      '--warmup',
      String(opts.warmup),
      '--reps',
      String(opts.reps),
      '--gen-reps',
      String(opts.genReps),
      '--threads',
      String(opts.threads),
    ];
    // The same OpenMP wait policy as our addon (native/index.ts): spinning OpenMP threads starve
    // each other on a loaded 2-core machine, and slowed this PyTorch several-fold when measured.
    const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' };
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
    });
    child.stderr.on('data', (d: string) => {
      err += d;
      process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(TORCH_PREFIX));
      resolve({
        result: line ? (JSON.parse(line.slice(TORCH_PREFIX.length)) as TorchResult) : null,
        code,
        tail: (err + out).slice(-1500),
      });
    });
  });
}

const MiB = 1024 * 1024;

interface Timed {
  fwdBwd?: { median: number; samples: number[] };
  forward?: { median: number; samples: number[] };
  gen?: { median: number; samples: number[]; newTokens: number };
  rssLoadedBytes?: number;
  peakRssFwdBwdBytes?: number;
  peakRssGenBytes?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One result from several rounds: timing samples pooled (median of all), memory the worst round's. */
function pool<T extends Timed>(runs: T[]): T {
  const first = runs[0];
  const samples = (pick: (r: T) => { samples: number[] } | undefined) =>
    runs.flatMap((r) => pick(r)?.samples ?? []);
  const stat = <S extends { median: number; samples: number[] }>(
    pick: (r: T) => S | undefined,
  ): S | undefined => {
    const all = samples(pick);
    const f = pick(first);
    return f ? { ...f, median: median(all), samples: all } : f;
  };
  const worst = (pick: (r: T) => number | undefined) => Math.max(...runs.map((r) => pick(r) ?? Number.NaN));
  const peakFwdBwd = worst((r) => r.peakRssFwdBwdBytes);
  // The loaded RSS of the worst round, so that the difference belongs to one process.
  const at = runs.find((r) => r.peakRssFwdBwdBytes === peakFwdBwd) ?? first;
  return {
    ...first,
    fwdBwd: stat((r) => r.fwdBwd) as T['fwdBwd'],
    forward: stat((r) => r.forward) as T['forward'],
    gen: stat((r) => r.gen) as T['gen'],
    peakRssFwdBwdBytes: peakFwdBwd,
    rssLoadedBytes: at.rssLoadedBytes,
    peakRssGenBytes: worst((r) => r.peakRssGenBytes),
  };
}
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

export async function benchModel(opts: { quick: boolean }): Promise<ModelBenchRow[]> {
  const quick = opts.quick;
  const threads = Number(process.env.OMP_NUM_THREADS) || 2;
  const job: ModelWorkerJob = {
    dir: mkdtempSync(join(tmpdir(), 'othink-model-bench-')),
    seed: 1234,
    warmup: 1,
    reps: quick ? 2 : 5,
    genReps: quick ? 1 : 5,
    batch: 8,
    seqLen: 123,
    imageSize: 112,
    newTokens: quick ? 8 : 32,
    config: smallConfig(Number(process.env.OTHINK_BENCH_VOCAB) || SMALL_VOCAB),
    threads,
  };
  // Rounds of [ours, PyTorch]: a stretch of heavy load on the shared machine then hits both sides
  // rather than all the samples of one; each side's samples are pooled over the rounds.
  const rounds = Number(process.env.OTHINK_BENCH_ROUNDS) || (quick ? 1 : 2);
  const load0 = loadavg()[0];
  try {
    const { python, tried } = findTorchPython();
    const oursRuns: ModelWorkerResult[] = [];
    const torchRuns: TorchResult[] = [];
    let torch: TorchResult | null = null;
    let skipped: string | null = python
      ? null
      : `PyTorch peer skipped: no interpreter imports torch (tried ${tried.join(', ')}; apt-get install python3-torch libopenblas0-pthread)`;
    for (let round = 0; round < rounds; round++) {
      log(
        `round ${round + 1}/${rounds}, ours: ${job.batch} x ${job.seqLen} tokens, ${job.reps} timed runs (load ${loadavg()[0].toFixed(2)})`,
      );
      oursRuns.push(await runWorker(job));
      if (!python || skipped) continue;
      log(`round ${round + 1}/${rounds}, pytorch (${python}): parity, then the same timings`);
      const r = await runTorch(python, job.dir, {
        warmup: job.warmup,
        reps: job.reps,
        genReps: job.genReps,
        threads,
      });
      torch ??= r.result;
      if (!r.result) skipped = `PyTorch peer failed (exit ${r.code}): ${r.tail.replaceAll('\n', ' ')}`;
      else if (!r.result.parity.ok) {
        torch = r.result;
        skipped = `PyTorch peer: parity FAILED (${JSON.stringify(r.result.parity)}), no timing compared`;
      } else torchRuns.push(r.result);
    }
    const ours = pool(oursRuns);
    const timed = !skipped && torchRuns.length ? pool(torchRuns) : null;
    const load1 = loadavg()[0];
    const row = (
      name: string,
      o: number | null,
      p: number | null | undefined,
      unit: string,
      digits = 1,
    ): ModelBenchRow => ({
      name,
      ours: o === null ? null : round(o, digits),
      pytorch: p === null || p === undefined ? null : round(p, digits),
      unit,
      ratio: o !== null && p ? round(o / p, 2) : null,
    });
    const tokens = ours.tokens;
    const rows: ModelBenchRow[] = [
      row(
        'forward + backward (mean CE)',
        tokens / ours.fwdBwd.median,
        timed?.fwdBwd && tokens / timed.fwdBwd.median,
        'tokens/s (higher is better)',
      ),
      row(
        'forward + backward step',
        ours.fwdBwd.median * 1e3,
        timed?.fwdBwd && timed.fwdBwd.median * 1e3,
        'ms',
      ),
      row(
        'forward alone (no grad, with loss)',
        tokens / ours.forward.median,
        timed?.forward && tokens / timed.forward.median,
        'tokens/s',
      ),
      row(
        `greedy generation (${job.batch} x ${job.newTokens} new tokens, KV cache, prefill included)`,
        ours.gen.newTokens / ours.gen.median,
        timed?.gen && timed.gen.newTokens / timed.gen.median,
        'new tokens/s (higher is better)',
      ),
      row(
        'peak RSS during forward + backward',
        ours.peakRssFwdBwdBytes / MiB,
        timed?.peakRssFwdBwdBytes && timed.peakRssFwdBwdBytes / MiB,
        'MiB (lower is better)',
        0,
      ),
      row(
        'peak RSS during forward + backward minus RSS with the model loaded (activations, gradients, workspace)',
        (ours.peakRssFwdBwdBytes - ours.rssLoadedBytes) / MiB,
        timed?.peakRssFwdBwdBytes && (timed.peakRssFwdBwdBytes - (timed.rssLoadedBytes ?? 0)) / MiB,
        'MiB',
        0,
      ),
      row(
        'peak RSS during generation',
        ours.peakRssGenBytes / MiB,
        timed?.peakRssGenBytes && timed.peakRssGenBytes / MiB,
        'MiB',
        0,
      ),
      row(
        'peak tensor memory, forward + backward (native allocator; weights included)',
        ours.peakTensorBytes / MiB,
        null,
        `MiB (weights ${(ours.baseTensorBytes / MiB).toFixed(0)})`,
        0,
      ),
    ];
    if (torch) {
      const p = torch.parity;
      rows.push(
        {
          name: 'parity: logits max |ours - pytorch| (sampled positions, all vocab)',
          ours: Number(p.logitsMaxAbs.toExponential(2)),
          pytorch: null,
          unit: `abs (tolerance 1e-3; max |logit| ${p.logitsMaxAbsRef.toFixed(3)})`,
          ratio: null,
        },
        {
          name: 'parity: final hidden states / per-token log-probs max |diff|',
          ours: `${p.hiddenMaxAbs.toExponential(2)} / ${p.logprobsMaxAbs.toExponential(2)}`,
          pytorch: null,
          unit: `abs; positions ${p.positionsEqual ? 'identical' : 'DIFFER'}`,
          ratio: null,
        },
        {
          name: 'parity: loss (ours / pytorch), gradient norms max rel diff',
          ours: round(ours.loss, 6),
          pytorch: round(p.loss, 6),
          unit: `loss |diff| ${p.lossAbsDiff.toExponential(2)}; grad-norm rel ${p.gradNormMaxRelDiff.toExponential(2)}, grad values rel ${p.gradHeadMaxRelDiff.toExponential(2)}`,
          ratio: null,
        },
        {
          name: 'parity: greedy ids equal',
          ours: p.generatedEqual,
          pytorch: p.generatedTotal,
          unit: `tokens (first divergence per row: ${p.generatedFirstDiff.join(' ')})`,
          ratio: null,
        },
      );
    }
    rows.push({
      name: `setup: ${(ours.params / 1e6).toFixed(2)} M params (vision ${(ours.visionParams / 1e6).toFixed(2)} M), ${job.batch} x ${job.seqLen} tokens, ${ours.targets} loss targets; ${rounds} round(s) of ${job.reps} timed runs (generation ${job.genReps}) after ${job.warmup} warm-up per side`,
      ours: `${ours.threads} threads`,
      pytorch: torch
        ? `torch ${torch.torch}, ${torch.threads} threads, BLAS ${torch.blas}, OMP_WAIT_POLICY=${torch.ompWaitPolicy ?? 'unset'}`
        : null,
      unit: `load avg (1 min) ${load0.toFixed(2)} -> ${load1.toFixed(2)}`,
      ratio: null,
    });
    if (skipped) rows.push({ name: skipped, ours: null, pytorch: null, unit: '', ratio: null });
    return rows;
  } finally {
    rmSync(job.dir, { recursive: true, force: true });
  }
}

// Alone: tsx benchmarks/src/model.ts [--quick]
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  benchModel({ quick: process.argv.includes('--quick') }).then(
    (rows) => {
      const cell = (v: unknown) => (v === null || v === undefined ? '–' : String(v));
      process.stdout.write('| name | ours | pytorch | unit | ratio |\n| --- | --- | --- | --- | --- |\n');
      for (const r of rows)
        process.stdout.write(
          `| ${r.name} | ${cell(r.ours)} | ${cell(r.pytorch)} | ${r.unit} | ${cell(r.ratio)} |\n`,
        );
    },
    (err) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
