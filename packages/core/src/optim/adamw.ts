import { nativeOp } from '../tensor/ops/native.js';
import { keep } from '../tensor/scope.js';
import { formatShape, Tensor } from '../tensor/tensor.js';

const adamwStep =
  nativeOp<
    (o: {
      param: Tensor;
      grad: Tensor;
      m: Tensor;
      v: Tensor;
      lr: number;
      beta1: number;
      beta2: number;
      eps: number;
      weightDecay: number;
      step: number;
      gradScale: number;
    }) => void
  >('adamwStep');

export interface AdamWOptions {
  /** Learning rate (the paper / R1-V: 1e-6). Schedules set it per step through `step({ lr })`. */
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay, applied to every parameter given (no bias / norm exclusion). */
  weightDecay?: number;
}

export interface AdamWState {
  step: number;
  /** First and second moments, in the order of the parameters. */
  moments: { m: Tensor; v: Tensor }[];
}

/**
 * AdamW with torch.optim.AdamW's update (decoupled weight decay, bias correction) in one fused
 * native pass per parameter; float32 moments.
 */
export class AdamW {
  readonly lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private stepCount = 0;
  private readonly moments: { m: Tensor; v: Tensor }[];

  constructor(
    readonly params: Tensor[],
    options: AdamWOptions = {},
  ) {
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    params.forEach((p, i) => {
      if (p.dtype !== 'float32')
        throw new TypeError(`AdamW: params[${i}] has dtype ${p.dtype}; AdamW updates float32 master weights`);
    });
    this.moments = params.map((p) => ({
      m: keep(Tensor.zeros(p.shape, { device: p.device })),
      v: keep(Tensor.zeros(p.shape, { device: p.device })),
    }));
  }

  /** Steps taken so far. */
  get step(): number {
    return this.stepCount;
  }

  /**
   * One update of every parameter that has a gradient. `lr` overrides the learning rate for this
   * step (schedules); `gradScale` multiplies the gradients first (global-norm clipping).
   */
  update(options: { lr?: number; gradScale?: number } = {}): void {
    this.stepCount += 1;
    const [beta1, beta2] = this.betas;
    this.params.forEach((param, i) => {
      if (!param.grad) return;
      param.assertUsable('AdamW.update', `params[${i}]`);
      adamwStep({
        param,
        grad: param.grad,
        m: this.moments[i].m,
        v: this.moments[i].v,
        lr: options.lr ?? this.lr,
        beta1,
        beta2,
        eps: this.eps,
        weightDecay: this.weightDecay,
        step: this.stepCount,
        gradScale: options.gradScale ?? 1,
      });
    });
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /** The step count and moments (shared tensors: copy them before the next update to keep them). */
  state(): AdamWState {
    return { step: this.stepCount, moments: this.moments };
  }

  /** Restores a state saved from an optimizer over parameters of the same shapes. */
  loadState(state: { step: number; moments: { m: Float32Array; v: Float32Array }[] }): void {
    if (state.moments.length !== this.moments.length) {
      throw new RangeError(
        `AdamW.loadState: ${state.moments.length} moment pairs for ${this.moments.length} parameters`,
      );
    }
    state.moments.forEach(({ m, v }, i) => {
      const size = this.params[i].size;
      if (m.length !== size || v.length !== size) {
        throw new RangeError(
          `AdamW.loadState: moments ${i} have ${m.length} / ${v.length} values for a parameter ${formatShape(this.params[i].shape)}`,
        );
      }
      this.moments[i].m.storage.write(m);
      this.moments[i].v.storage.write(v);
    });
    this.stepCount = state.step;
  }

  /** Frees the moments. */
  dispose(): void {
    for (const { m, v } of this.moments) {
      m.dispose();
      v.dispose();
    }
  }
}
