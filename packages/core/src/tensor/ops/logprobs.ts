// Token log-probabilities and cross-entropy as autograd ops, on the fused kernels of @othink/native:
// from full logits, or straight from hidden states and the LM head without [tokens, vocab] logits.
import {
  fusedLinearLogprobs,
  fusedLinearLogprobsBackward,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '@othink/native';
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { scale, sumAll } from './arithmetic.js';
import { checkInputs } from './checks.js';

export interface LogprobOptions {
  /** Divides the logits before the softmax (sampling temperature). Default 1. */
  temperature?: number;
  /** Targets with this id get log-prob 0 and no gradient (e.g. -100). */
  ignoreIndex?: number;
  /** Tokens per chunk of the fused LM-head kernel (memory: chunk * vocab floats). */
  chunkSize?: number;
}

function checkTargets(op: string, targets: Tensor, n: number): void {
  checkInputs(op, { targets }, 'int32');
  if (targets.size !== n)
    throw new RangeError(`${op}: targets ${formatShape(targets.shape)} must hold one id per row (${n})`);
}

/** log softmax(logits / T)[target] per row: logits [..., V], targets int32 [...] -> [...]. */
export function logprobsFromLogits(logits: Tensor, targets: Tensor, options: LogprobOptions = {}): Tensor {
  checkInputs('logprobsFromLogits', { logits });
  const vocabSize = logits.shape.at(-1) ?? 0;
  const n = vocabSize === 0 ? 0 : logits.size / vocabSize;
  checkTargets('logprobsFromLogits', targets, n);
  const common = { targets, vocabSize, temperature: options.temperature, ignoreIndex: options.ignoreIndex };
  const { logprobs, lse } = tokenLogprobs({ logits, ...common });
  const out = Tensor.from(logprobs, logits.shape.slice(0, -1), { device: logits.device });
  const [sl, st] = saveAll(logits, targets);
  return record(
    'logprobsFromLogits',
    out,
    [logits, null],
    (g) => {
      const dlogits = Tensor.empty(logits.shape, { device: logits.device });
      tokenLogprobsBackward({
        ...common,
        logits: sl,
        targets: st,
        lse,
        gradLogprobs: g.toFloat32Array(),
        out: dlogits,
      });
      return [dlogits, null];
    },
    [sl, st],
  );
}

/**
 * log p(target) from hidden states [..., H] and the LM-head weight [V, H], chunk by chunk: the
 * [tokens, V] logits never exist (forward or backward). Gradients flow to hidden and weight.
 */
export function lmHeadLogprobs(
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor,
  options: LogprobOptions = {},
): Tensor {
  checkInputs('lmHeadLogprobs', { hidden, weight });
  const hiddenSize = hidden.shape.at(-1) ?? 0;
  if (weight.rank !== 2 || weight.shape[1] !== hiddenSize) {
    throw new RangeError(
      `lmHeadLogprobs: weight ${formatShape(weight.shape)} must be [vocab, ${hiddenSize}] for hidden ${formatShape(hidden.shape)}`,
    );
  }
  const n = hiddenSize === 0 ? 0 : hidden.size / hiddenSize;
  checkTargets('lmHeadLogprobs', targets, n);
  const common = {
    hiddenSize,
    temperature: options.temperature,
    ignoreIndex: options.ignoreIndex,
    chunkSize: options.chunkSize,
  };
  const { logprobs, lse } = fusedLinearLogprobs({ hidden, weight, targets, ...common });
  const out = Tensor.from(logprobs, hidden.shape.slice(0, -1), { device: hidden.device });
  const [sh, sw, st] = saveAll(hidden, weight, targets);
  return record(
    'lmHeadLogprobs',
    out,
    [hidden, weight, null],
    (g) => {
      const gradHidden = hidden.requiresGrad
        ? Tensor.empty(hidden.shape, { device: hidden.device })
        : undefined;
      const gradWeight = weight.requiresGrad
        ? Tensor.zeros(weight.shape, { device: weight.device })
        : undefined;
      fusedLinearLogprobsBackward({
        ...common,
        hidden: sh,
        weight: sw,
        targets: st,
        lse,
        gradLogprobs: g.toFloat32Array(),
        gradHidden,
        gradWeight,
        needGradHidden: gradHidden !== undefined,
      });
      return [gradHidden ?? null, gradWeight ?? null, null];
    },
    [sh, sw, st],
  );
}

/** Number of targets that are not `ignoreIndex`. */
function countTargets(targets: Tensor, ignoreIndex: number): number {
  let n = 0;
  for (const t of targets.toTypedArray()) if (t !== ignoreIndex) n++;
  return n;
}

/**
 * Mean cross-entropy over the targets that are not ignored (default -100, as HF / PyTorch):
 * -sum(log p) / count. From logits [..., V], or from hidden states and an LM head (`lmHead`).
 */
export function crossEntropy(
  input: Tensor,
  targets: Tensor,
  options: LogprobOptions & { lmHead?: Tensor } = {},
): Tensor {
  const ignoreIndex = options.ignoreIndex ?? -100;
  const opts = { ...options, ignoreIndex };
  const lp = options.lmHead
    ? lmHeadLogprobs(input, options.lmHead, targets, opts)
    : logprobsFromLogits(input, targets, opts);
  const count = countTargets(targets, ignoreIndex);
  return scale(sumAll(lp), -1 / Math.max(count, 1));
}
