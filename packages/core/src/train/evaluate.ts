// Evaluation as in R1-V: greedy decoding on a test set, accuracy and format accuracy.
import { generate } from '../model/generate.js';
import type { Qwen2VLForConditionalGeneration } from '../model/qwen2vl.js';
import { tidy } from '../tensor/scope.js';
import { modelInputs } from './batch.js';
import type { TrainDataAdapter } from './types.js';

export type EvalScorer<S> = (
  completions: string[],
  samples: S[],
) => Promise<{ accuracy: number[]; format: number[] }>;

export interface EvalRecord {
  prompt: string;
  completion: string;
  accuracy: number;
  format: number;
}

export interface EvalResult {
  /** Mean accuracy in [0, 1]. */
  accuracy: number;
  formatAccuracy: number;
  n: number;
  records: EvalRecord[];
}

/** Greedy completions of every sample, scored; `onProgress` gets the samples done so far. */
export async function evaluate<S>(
  model: Qwen2VLForConditionalGeneration,
  data: TrainDataAdapter<S>,
  samples: S[],
  score: EvalScorer<S>,
  options: { batchSize: number; maxNewTokens: number; onProgress?: (done: number, total: number) => void },
): Promise<EvalResult> {
  const records: EvalRecord[] = [];
  for (let i = 0; i < samples.length; i += options.batchSize) {
    const chunk = samples.slice(i, i + options.batchSize);
    const batch = data.encodePrompts(chunk);
    const gen = tidy(() =>
      generate(model, modelInputs(batch), {
        doSample: false,
        maxNewTokens: options.maxNewTokens,
        stopTokenIds: data.stopTokenIds,
        padTokenId: data.padTokenId,
      }),
    );
    const texts = chunk.map((_, r) => {
      const ids: number[] = [];
      for (let t = 0; t < gen.length && gen.completionMask[r * gen.length + t]; t++)
        ids.push(gen.completionIds[r * gen.length + t]);
      return data.decode(ids);
    });
    const scored = await score(texts, chunk);
    texts.forEach((completion, r) => {
      records.push({
        prompt: data.promptText(chunk[r]),
        completion,
        accuracy: scored.accuracy[r],
        format: scored.format[r],
      });
    });
    options.onProgress?.(records.length, samples.length);
  }
  const mean = (k: 'accuracy' | 'format') =>
    records.reduce((a, r) => a + r[k], 0) / Math.max(records.length, 1);
  return { accuracy: mean('accuracy'), formatAccuracy: mean('format'), n: records.length, records };
}
