// Checks across fields, each explaining itself: the GRPO batch rule, the tiny model's shape, the
// eval tasks.
import { type Device, deviceUnavailableReason } from '@othink/core';
import { ConfigError } from './errors.js';
import type { GrpoSection, RunConfig, TinyModelConfig } from './schema.js';

export interface ConfigProblem {
  /** Dotted path of the field to change. */
  path: string;
  message: string;
}

export interface GrpoBatch {
  /** Prompts per optimizer step. */
  promptsPerStep: number;
  /** promptsPerStep * numGenerations. */
  completionsPerStep: number;
  /** Micro-batches of perDeviceTrainBatchSize completions per step. */
  gradientAccumulationSteps: number;
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

function orList(xs: number[]): string {
  const shown = xs.length > 8 ? [...xs.slice(0, 7), '...', xs[xs.length - 1]] : xs;
  return shown.length === 1
    ? String(shown[0])
    : `${shown.slice(0, -1).join(', ')} or ${shown[shown.length - 1]}`;
}

/**
 * The GRPO step (GrpoConfig): promptsPerStep prompts, each sampled numGenerations (G) times, so a
 * step holds promptsPerStep * G completions; they are split into micro-batches of
 * perDeviceTrainBatchSize completions, which must divide them. A TRL-style
 * perDeviceTrainBatchSize * gradientAccumulationSteps (completions per step) must be a multiple of G.
 */
export function grpoBatch(g: GrpoSection): GrpoBatch | ConfigProblem {
  const G = g.numGenerations;
  const B = g.perDeviceTrainBatchSize;
  let P = g.promptsPerStep;
  if (g.gradientAccumulationSteps !== undefined) {
    const completions = B * g.gradientAccumulationSteps;
    if (P === undefined) {
      if (completions % G !== 0) {
        return {
          path: 'grpo.gradientAccumulationSteps',
          message:
            `perDeviceTrainBatchSize ${B} × gradientAccumulationSteps ${g.gradientAccumulationSteps} = ${completions} completions per step ` +
            `is not a multiple of numGenerations ${G}: each prompt's ${G} completions form one group, so a step must hold whole groups ` +
            `(or set grpo.promptsPerStep instead of gradientAccumulationSteps)`,
        };
      }
      P = completions / G;
    } else if (completions !== P * G) {
      return {
        path: 'grpo.gradientAccumulationSteps',
        message:
          `perDeviceTrainBatchSize ${B} × gradientAccumulationSteps ${g.gradientAccumulationSteps} = ${completions} completions, ` +
          `but promptsPerStep ${P} × numGenerations ${G} = ${P * G}: give one of gradientAccumulationSteps and promptsPerStep`,
      };
    }
  }
  if (P === undefined) P = B > G && B % G === 0 ? B / G : 1;
  const completions = P * G;
  if (completions % B !== 0) {
    const fits = divisors(completions);
    let prompts = P + 1;
    while ((prompts * G) % B !== 0) prompts++;
    return {
      path: 'grpo.perDeviceTrainBatchSize',
      message:
        `perDeviceTrainBatchSize ${B} must divide the ${completions} completions of a step ` +
        `(promptsPerStep ${P} × numGenerations ${G}), which are split into equal micro-batches. ` +
        `Use perDeviceTrainBatchSize ${orList(fits)}, or promptsPerStep ${prompts} (${prompts * G} completions)`,
    };
  }
  return { promptsPerStep: P, completionsPerStep: completions, gradientAccumulationSteps: completions / B };
}

export function isProblem(x: GrpoBatch | ConfigProblem): x is ConfigProblem {
  return 'message' in x;
}

/** The M-RoPE split of head_dim / 2 (Qwen2-VL: [16, 24, 24] of 64, i.e. 1/4, 3/8, 3/8). */
export function mropeSection(headDim: number): [number, number, number] | undefined {
  if (headDim % 2 !== 0) return undefined;
  const half = headDim / 2;
  const t = Math.round(half / 4);
  if ((half - t) % 2 !== 0) return undefined;
  return [t, (half - t) / 2, (half - t) / 2];
}

export function checkTinyModel(t: TinyModelConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  if (t.hiddenSize % t.numAttentionHeads !== 0) {
    out.push({
      path: 'model.tiny.numAttentionHeads',
      message: `hiddenSize ${t.hiddenSize} is not divisible by numAttentionHeads ${t.numAttentionHeads}`,
    });
  } else {
    const headDim = t.hiddenSize / t.numAttentionHeads;
    if (!mropeSection(headDim)) {
      out.push({
        path: 'model.tiny.hiddenSize',
        message: `head_dim ${headDim} (hiddenSize / numAttentionHeads) cannot be split into Qwen2-VL's three M-RoPE sections; use a multiple of 8 such as 16 or 32`,
      });
    }
  }
  if (t.numAttentionHeads % t.numKeyValueHeads !== 0) {
    out.push({
      path: 'model.tiny.numKeyValueHeads',
      message: `numAttentionHeads ${t.numAttentionHeads} is not a multiple of numKeyValueHeads ${t.numKeyValueHeads} (grouped-query attention)`,
    });
  }
  if (t.visionEmbedDim % t.visionNumHeads !== 0) {
    out.push({
      path: 'model.tiny.visionNumHeads',
      message: `visionEmbedDim ${t.visionEmbedDim} is not divisible by visionNumHeads ${t.visionNumHeads}`,
    });
  } else if ((t.visionEmbedDim / t.visionNumHeads) % 4 !== 0) {
    out.push({
      path: 'model.tiny.visionEmbedDim',
      message: `the vision head dim ${t.visionEmbedDim / t.visionNumHeads} must be a multiple of 4 (2D rotary embedding)`,
    });
  }
  return out;
}

/** Every cross-field problem of a parsed config (empty: fine). */
export function checkRunConfig(c: RunConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  if (c.grpo) {
    if (c.grpo.numGenerations < 2) {
      out.push({
        path: 'grpo.numGenerations',
        message: `numGenerations ${c.grpo.numGenerations}: GRPO compares the completions of a prompt with each other (group mean and std), so it needs at least 2`,
      });
    }
    const batch = grpoBatch(c.grpo);
    if (isProblem(batch)) out.push(batch);
    if (c.grpo.epsilon >= 1) {
      out.push({
        path: 'grpo.epsilon',
        message: `epsilon ${c.grpo.epsilon} would clip the ratio at 1 - epsilon <= 0; use a value below 1 (TRL: 0.2)`,
      });
    }
  }
  for (const [name, phase] of [
    ['sft', c.sft],
    ['grpo', c.grpo],
  ] as const) {
    if (
      phase &&
      phase.warmupSteps !== undefined &&
      phase.maxSteps !== undefined &&
      phase.warmupSteps > phase.maxSteps
    ) {
      out.push({
        path: `${name}.warmupSteps`,
        message: `warmupSteps ${phase.warmupSteps} is more than maxSteps ${phase.maxSteps}: the learning rate would never reach ${phase.learningRate}`,
      });
    }
  }
  if (c.model.path === 'tiny') out.push(...checkTinyModel(c.model.tiny));
  if (
    c.model.minPixels !== undefined &&
    c.model.maxPixels !== undefined &&
    c.model.minPixels > c.model.maxPixels
  ) {
    out.push({
      path: 'model.minPixels',
      message: `minPixels ${c.model.minPixels} is more than maxPixels ${c.model.maxPixels}`,
    });
  }
  const s = c.data.synthetic;
  if (s.minAnswer !== undefined && s.maxAnswer !== undefined && s.minAnswer > s.maxAnswer) {
    out.push({
      path: 'data.synthetic.minAnswer',
      message: `minAnswer ${s.minAnswer} is more than maxAnswer ${s.maxAnswer}`,
    });
  }
  if (c.eval.tasks && new Set(c.eval.tasks).size !== c.eval.tasks.length) {
    out.push({ path: 'eval.tasks', message: `eval.tasks lists a task twice: ${c.eval.tasks.join(', ')}` });
  }
  if (c.eval.path !== undefined && c.eval.tasks !== undefined && c.eval.tasks.length > 1) {
    out.push({
      path: 'eval.path',
      message:
        'eval.path gives one test set, so eval.tasks must name one task (the cross-task matrix uses synthetic test sets)',
    });
  }
  return out;
}

/**
 * `model.device` must be usable in this process (a CUDA build that sees a GPU for `cuda`): checked
 * before any data or model is loaded, so the run stops with one line.
 */
export function checkDevice(device: Device, path = 'model.device'): void {
  const reason = deviceUnavailableReason(device);
  if (reason !== null) throw new ConfigError(`${path}=${device}: ${reason}`);
}
