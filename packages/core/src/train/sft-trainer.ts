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
    const { rank, worldSize: w } = this.group;
    const b = c.perDeviceTrainBatchSize;
    const start = performance.now();
    // Each micro-batch is a global batch of b x W examples from the shared data order, of which
    // this rank takes rows [rank*b, (rank+1)*b): the ranks together see what one process with a
    // batch of b x W would.
    const batches: SftBatchLike[] = [];
    const targets: Int32Array[] = [];
    const counts = new Int32Array(c.gradientAccumulationSteps);
    for (let micro = 0; micro < c.gradientAccumulationSteps; micro++) {
      const indices = this.order.take(b * w).slice(rank * b, (rank + 1) * b);
      const batch = this.options.data.encodeSft(this.samples(indices));
      const t = shiftedTargets(batch.labels, batch.batchSize, batch.seqLen);
      batches.push(batch);
      targets.push(t);
      counts[micro] = t.reduce((n, x) => n + (x === -100 ? 0 : 1), 0);
    }
    // The loss of a micro-batch is the mean over the target tokens of the whole global micro-batch
    // (the 1-process loss), so every rank divides by the global count; x W because the gradients
    // are averaged over the ranks afterwards.
    this.group.allReduce(counts, 'sum');
    let lossSum = 0;
    let tokens = 0;
    batches.forEach((batch, micro) => {
      lossSum += tidy(() => {
        const { batchSize: rows, seqLen: s } = batch;
        const out = this.model.forward(modelInputs(batch), {
          gradientCheckpointing: c.gradientCheckpointing ?? false,
        });
        const lp = this.model.tokenLogprobs(
          narrow(out.hidden, 1, 0, s - 1),
          Tensor.from(targets[micro], [rows, s - 1], { dtype: 'int32', device: this.model.device }),
          { ignoreIndex: -100 },
        );
        const loss = scale(sumAll(lp), -w / Math.max(counts[micro], 1) / c.gradientAccumulationSteps);
        loss.backward();
        // This rank's part of the micro-batch's mean (the parts add up to it over the ranks).
        return (loss.item() * c.gradientAccumulationSteps) / w;
      });
      tokens += batch.attentionMask.reduce((n, m) => n + m, 0);
    });
    const seconds = (performance.now() - start) / 1000;
    // Loss parts and throughputs add up over the ranks.
    return this.globalValues(
      { phase: 'sft', loss: lossSum / c.gradientAccumulationSteps, tokens_per_second: tokens / seconds },
      ['loss', 'tokens_per_second'],
    );
  }
}
