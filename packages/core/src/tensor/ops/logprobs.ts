// Token log-probabilities and cross-entropy as autograd ops, on the fused kernels of @othink/native:
// from full logits, or straight from hidden states and the LM head without [tokens, vocab] logits.
// Everything stays on the input's device: the log-probs, the log-sum-exp saved for the backward and
// the gradients are tensors there, the upstream gradient goes to the kernel as a tensor, and
// crossEntropy's count of targets comes from the kernel's own target check (on CUDA a device pass
// whose count is the only thing copied back).
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

/**
 * Float inputs of the log-prob kernels: usable, on one device, in one dtype: float32, or bfloat16 on
 * cuda (the CUDA kernels widen it exactly; their results and gradients are float32).
 */
function checkFloatInputs(op: string, inputs: Record<string, Tensor>): void {
  const [[firstName, first]] = Object.entries(inputs);
  first.assertUsable(op, firstName);
  if (first.dtype === 'bfloat16' && first.device !== 'cuda')
    throw new TypeError(
      `${op}: ${firstName} is bfloat16 on ${first.device}; bfloat16 log-probs run on cuda (the CPU kernels take float32)`,
    );
  checkInputs(op, inputs, first.dtype === 'bfloat16' ? 'bfloat16' : 'float32');
}

function checkTargets(op: string, targets: Tensor, n: number, inputName: string, input: Tensor): void {
  checkInputs(op, { targets }, 'int32');
  if (targets.device !== input.device)
    throw new Error(`${op}: ${inputName} is on ${input.device} but targets is on ${targets.device}`);
  if (targets.size !== n)
    throw new RangeError(`${op}: targets ${formatShape(targets.shape)} must hold one id per row (${n})`);
}

/** An op's log-probs and how many of its targets are not ignoreIndex. */
interface Counted {
  logprobs: Tensor;
  count: number;
}

function logprobsFromLogitsCounted(logits: Tensor, targets: Tensor, options: LogprobOptions): Counted {
  checkFloatInputs('logprobsFromLogits', { logits });
  const vocabSize = logits.shape.at(-1) ?? 0;
  const n = vocabSize === 0 ? 0 : logits.size / vocabSize;
  checkTargets('logprobsFromLogits', targets, n, 'logits', logits);
  const device = logits.device;
  const rows = logits.shape.slice(0, -1);
  const common = { targets, vocabSize, temperature: options.temperature, ignoreIndex: options.ignoreIndex };
  const out = Tensor.empty(rows, { device });
  const lse = Tensor.empty(rows, { device });
  const { count } = tokenLogprobs({ logits, ...common, outLogprobs: out, outLse: lse });
  const [sl, st, slse] = saveAll(logits, targets, lse);
  const logprobs = record(
    'logprobsFromLogits',
    out,
    [logits, null],
    (g) => {
      const dlogits = Tensor.empty(logits.shape, { device });
      tokenLogprobsBackward({ ...common, logits: sl, targets: st, lse: slse, gradLogprobs: g, out: dlogits });
      return [dlogits, null];
    },
    [sl, st, slse],
  );
  // The node keeps its own view of lse (or none is needed): this handle is done with.
  lse.dispose();
  return { logprobs, count };
}

/**
 * log softmax(logits / T)[target] per row: logits [..., V], targets int32 [...] -> [...], on the
 * logits' device. Logits may be bfloat16 on cuda; the log-probs and the gradient are float32.
 */
export function logprobsFromLogits(logits: Tensor, targets: Tensor, options: LogprobOptions = {}): Tensor {
  return logprobsFromLogitsCounted(logits, targets, options).logprobs;
}

function lmHeadLogprobsCounted(
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor,
  options: LogprobOptions,
): Counted {
  checkFloatInputs('lmHeadLogprobs', { hidden, weight });
  const hiddenSize = hidden.shape.at(-1) ?? 0;
  if (weight.rank !== 2 || weight.shape[1] !== hiddenSize) {
    throw new RangeError(
      `lmHeadLogprobs: weight ${formatShape(weight.shape)} must be [vocab, ${hiddenSize}] for hidden ${formatShape(hidden.shape)}`,
    );
  }
  const n = hiddenSize === 0 ? 0 : hidden.size / hiddenSize;
  checkTargets('lmHeadLogprobs', targets, n, 'hidden', hidden);
  const device = hidden.device;
  const rows = hidden.shape.slice(0, -1);
  const common = {
    hiddenSize,
    temperature: options.temperature,
    ignoreIndex: options.ignoreIndex,
    chunkSize: options.chunkSize,
  };
  const out = Tensor.empty(rows, { device });
  const lse = Tensor.empty(rows, { device });
  const { count } = fusedLinearLogprobs({
    hidden,
    weight,
    targets,
    ...common,
    outLogprobs: out,
    outLse: lse,
  });
  const [sh, sw, st, slse] = saveAll(hidden, weight, targets, lse);
  const logprobs = record(
    'lmHeadLogprobs',
    out,
    [hidden, weight, null],
    (g) => {
      // Only what a caller differentiates: a frozen LM head costs no [V, H] buffer.
      const gradHidden = hidden.requiresGrad ? Tensor.empty(hidden.shape, { device }) : undefined;
      const gradWeight = weight.requiresGrad ? Tensor.zeros(weight.shape, { device }) : undefined;
      fusedLinearLogprobsBackward({
        ...common,
        hidden: sh,
        weight: sw,
        targets: st,
        lse: slse,
        gradLogprobs: g,
        gradHidden,
        gradWeight,
        needGradHidden: gradHidden !== undefined,
        needGradWeight: gradWeight !== undefined,
      });
      return [gradHidden ?? null, gradWeight ?? null, null];
    },
    [sh, sw, st, slse],
  );
  lse.dispose();
  return { logprobs, count };
}

/**
 * log p(target) from hidden states [..., H] and the LM-head weight [V, H], chunk by chunk: the
 * [tokens, V] logits never exist (forward or backward). Gradients flow to hidden and weight. Both
 * float32, or both bfloat16 on cuda (float32 log-probs and gradients).
 */
export function lmHeadLogprobs(
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor,
  options: LogprobOptions = {},
): Tensor {
  return lmHeadLogprobsCounted(hidden, weight, targets, options).logprobs;
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
  const { logprobs, count } = options.lmHead
    ? lmHeadLogprobsCounted(input, options.lmHead, targets, opts)
    : logprobsFromLogitsCounted(input, targets, opts);
  return scale(sumAll(logprobs), -1 / Math.max(count, 1));
}
