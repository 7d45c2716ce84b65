// Supervised fine-tuning: cross-entropy on the assistant answer (labels -100 elsewhere), micro-
// batches with gradient accumulation.

import { scale, sumAll } from '../tensor/ops/arithmetic.js';
import { narrow } from '../tensor/ops/shape.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { modelInputs } from './batch.js';
import { Trainer } from './trainer.js';
import type { SftBatchLike, SftConfig, StepValues } from './types.js';

/** Targets of next-token prediction: labels[:, 1:] for hidden[:, :-1]. */
export function shiftedTargets(labels: Int32Array, batch: number, seqLen: number): Int32Array {
  const t = new Int32Array(batch * (seqLen - 1));
  for (let b = 0; b < batch; b++) t.set(labels.subarray(b * seqLen + 1, (b + 1) * seqLen), b * (seqLen - 1));
  return t;
}

export class SFTTrainer<S> extends Trainer<S, SftConfig> {
  protected async computeStep(): Promise<StepValues> {
    const c = this.config;
    const start = performance.now();
    let lossSum = 0;
    let tokens = 0;
    for (let micro = 0; micro < c.gradientAccumulationSteps; micro++) {
      const batch: SftBatchLike = this.options.data.encodeSft(
        this.samples(this.order.take(c.perDeviceTrainBatchSize)),
      );
      lossSum += tidy(() => {
        const { batchSize: b, seqLen: s } = batch;
        const targets = shiftedTargets(batch.labels, b, s);
        const count = targets.reduce((n, t) => n + (t === -100 ? 0 : 1), 0);
        const out = this.model.forward(modelInputs(batch), {
          gradientCheckpointing: c.gradientCheckpointing ?? false,
        });
        const lp = this.model.tokenLogprobs(
          narrow(out.hidden, 1, 0, s - 1),
          Tensor.from(targets, [b, s - 1], { dtype: 'int32', device: this.model.device }),
          { ignoreIndex: -100 },
        );
        const loss = scale(sumAll(lp), -1 / Math.max(count, 1) / c.gradientAccumulationSteps);
        loss.backward();
        return loss.item() * c.gradientAccumulationSteps;
      });
      tokens += batch.attentionMask.reduce((n, m) => n + m, 0);
    }
    const seconds = (performance.now() - start) / 1000;
    return { phase: 'sft', loss: lossSum / c.gradientAccumulationSteps, tokens_per_second: tokens / seconds };
  }
}
