// The fused GRPO / GRPO-D loss (@othink/native's grpoLoss) as an autograd op: a scalar loss tensor
// on the log-probs' device whose backward hands the log-probs the kernel's gradient times the
// upstream gradient, scaled on the device (the upstream gradient is never read on the host). The
// statistics trainers log come back as numbers: on CUDA they are reduced on the device and are the
// only values copied back.
import { type GrpoLossOptions, type GrpoLossStats, grpoLoss } from '@othink/native';
import { isGradEnabled } from '../autograd.js';
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { mul } from './arithmetic.js';
import { checkInputs, sameShape } from './checks.js';

/** The kernel's tensor inputs and outputs; the op takes the inputs as tensors and owns the outputs. */
type KernelBuffers =
  | 'logprobs'
  | 'oldLogprobs'
  | 'refLogprobs'
  | 'advantages'
  | 'completionMask'
  | 'withGrad'
  | 'outGrad'
  | 'withPerTokenLoss'
  | 'outPerTokenLoss'
  | 'outLoss';

/** The kernel's options (documented in @othink/native's GrpoLossOptions) with tensor inputs. */
export interface GrpoLossOpOptions extends Omit<GrpoLossOptions, KernelBuffers> {
  /** [S, T] log-probs at sampling time; default: the log-probs themselves (ratio 1). */
  oldLogprobs?: Tensor;
  /** [S, T] reference-model log-probs; required when `beta != 0` (reported in `meanKl` when given). */
  refLogprobs?: Tensor;
  /** [S] one advantage per sequence. */
  advantages: Tensor;
  /** [S, T] 1 up to and including the first EOS, else 0. */
  completionMask: Tensor;
}

export interface GrpoLossOpResult {
  /** Scalar float32 loss (times `lossScale`) on the log-probs' device; `loss.backward()` reaches them. */
  loss: Tensor;
  /** The statistics, and the loss as a float64 number (what trainers log). */
  stats: GrpoLossStats & { loss: number };
}

/**
 * The GRPO / GRPO-D loss of per-token log-probs [S, T] (recorded on the autograd tape). Every
 * tensor is float32 on the log-probs' device.
 */
export function grpoLossOp(logprobs: Tensor, options: GrpoLossOpOptions): GrpoLossOpResult {
  const op = 'grpoLossOp';
  const { oldLogprobs, refLogprobs, advantages, completionMask } = options;
  checkInputs(op, { logprobs, oldLogprobs, refLogprobs, advantages, completionMask });
  if (logprobs.rank !== 2)
    throw new RangeError(`${op}: logprobs ${formatShape(logprobs.shape)} must be [sequences, tokens]`);
  const [s] = logprobs.shape;
  if (advantages.rank !== 1 || advantages.shape[0] !== s)
    throw new RangeError(
      `${op}: advantages ${formatShape(advantages.shape)} must be [${s}] (one per sequence of logprobs ${formatShape(logprobs.shape)})`,
    );
  for (const [name, t] of Object.entries({ completionMask, oldLogprobs, refLogprobs })) {
    if (t && !sameShape(t.shape, logprobs.shape))
      throw new RangeError(
        `${op}: ${name} ${formatShape(t.shape)} must have the shape of logprobs ${formatShape(logprobs.shape)}`,
      );
  }
  const device = logprobs.device;
  const withGrad = isGradEnabled() && logprobs.requiresGrad;
  const loss = Tensor.empty([], { device });
  const grad = withGrad ? Tensor.empty(logprobs.shape, { device }) : undefined;
  const out = grpoLoss({
    logprobs,
    oldLogprobs,
    refLogprobs,
    advantages,
    completionMask,
    beta: options.beta,
    epsilonLow: options.epsilonLow,
    epsilonHigh: options.epsilonHigh,
    lossType: options.lossType,
    klEstimator: options.klEstimator,
    klClamp: options.klClamp,
    maxCompletionLength: options.maxCompletionLength,
    numItemsInBatch: options.numItemsInBatch,
    lossScale: options.lossScale,
    withGrad,
    outGrad: grad,
    outLoss: loss,
  });
  const stats = { ...out.stats, loss: out.loss };
  if (!grad) return { loss, stats };
  const [saved] = saveAll(grad);
  grad.dispose(); // the node holds its own view
  // d loss / d logprobs = the kernel's gradient times the upstream scalar, a [] tensor broadcast on
  // the device (1 for loss.backward(): an exact product).
  const recorded = record('grpoLoss', loss, [logprobs], (g) => [mul(saved, g)], [saved]);
  return { loss: recorded, stats };
}
