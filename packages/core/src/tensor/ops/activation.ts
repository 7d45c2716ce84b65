// The activations of Qwen2-VL on the native kernels (native/src/cpu/activation.h): the LLM's fused
// SiLU-gated product (spec §3.4), the vision MLP's QuickGELU (§2.5) and the merger's exact GELU (§2.6).
import { isGradEnabled } from '../autograd.js';
import { record, saveAll, Tensor } from '../tensor.js';
import { checkInputs, checkSameShape } from './checks.js';
import { nativeOp } from './native.js';

const swigluKernel = nativeOp<(o: { gate: Tensor; up: Tensor; out: Tensor }) => void>('swiglu');
const swigluBackwardKernel =
  nativeOp<(o: { grad: Tensor; gate: Tensor; up: Tensor; gradGate?: Tensor; gradUp?: Tensor }) => void>(
    'swigluBackward',
  );

type UnaryKernel = (o: { x: Tensor; out: Tensor }) => void;
type UnaryBackwardKernel = (o: { grad: Tensor; x: Tensor; gradX: Tensor }) => void;
const unaryKernels = {
  quickGelu: [nativeOp<UnaryKernel>('quickGelu'), nativeOp<UnaryBackwardKernel>('quickGeluBackward')],
  gelu: [nativeOp<UnaryKernel>('gelu'), nativeOp<UnaryBackwardKernel>('geluBackward')],
} as const;

/**
 * `silu(gate) * up`, silu(x) = x * sigmoid(x): the gated product of the LLM MLP,
 * `down(swiglu(gate(x), up(x)))` (spec §3.4), in one pass without the silu intermediate.
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  checkInputs('swiglu', { gate, up });
  checkSameShape('swiglu', 'gate', gate, 'up', up);
  const out = Tensor.empty(gate.shape, { device: gate.device });
  if (out.size > 0) swigluKernel({ gate, up, out });
  if (!isGradEnabled() || !(gate.requiresGrad || up.requiresGrad)) return out;
  const wantGate = gate.requiresGrad;
  const wantUp = up.requiresGrad;
  const saved = saveAll(gate, up);
  const [sg, su] = saved;
  return record(
    'swiglu',
    out,
    [gate, up],
    (grad) => {
      const gradGate = wantGate ? Tensor.empty(sg.shape, { device: sg.device }) : undefined;
      const gradUp = wantUp ? Tensor.empty(su.shape, { device: su.device }) : undefined;
      if (grad.size > 0) swigluBackwardKernel({ grad, gate: sg, up: su, gradGate, gradUp });
      return [gradGate ?? null, gradUp ?? null];
    },
    saved,
  );
}

function unary(op: keyof typeof unaryKernels, x: Tensor): Tensor {
  checkInputs(op, { x });
  const [forward, backward] = unaryKernels[op];
  const out = Tensor.empty(x.shape, { device: x.device });
  if (out.size > 0) forward({ x, out });
  if (!isGradEnabled() || !x.requiresGrad) return out;
  const saved = saveAll(x);
  const [sx] = saved;
  return record(
    op,
    out,
    [x],
    (grad) => {
      const gradX = Tensor.empty(sx.shape, { device: sx.device });
      if (grad.size > 0) backward({ grad, x: sx, gradX });
      return [gradX];
    },
    saved,
  );
}

/** QuickGELU `x * sigmoid(1.702 x)`, the vision blocks' MLP activation (spec §2.5). */
export function quickGelu(x: Tensor): Tensor {
  return unary('quickGelu', x);
}

/** GELU in its exact erf form `x * (1 + erf(x / sqrt 2)) / 2` (the merger MLP, spec §2.6). */
export function gelu(x: Tensor): Tensor {
  return unary('gelu', x);
}
