// checkpoint() (tensor/checkpoint.ts): gradients bit for bit those of the plain run (a small MLP
// block stack, a real decoder layer and the whole tiny Qwen2-VL with gradientCheckpointing), the
// activation memory of a block stack growing by one block output per block instead of by every
// activation, no leaks, and the edge cases (noGrad, outputs that do not depend on the inputs,
// blocks that misuse their closure, retainGraph, nesting).
import { dirname } from 'node:path';
import { Fixture, fixtureCases, fixturePath } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  add,
  checkpoint,
  gelu,
  linear,
  memoryStats,
  mul,
  narrow,
  noGrad,
  Qwen2VLForConditionalGeneration,
  resetPeakMemory,
  rmsNorm,
  scale,
  sumAll,
  Tensor,
  tidy,
} from '../src/index.js';
import { MOST_IMAGES_CASE } from './qwen2vl-fixture.js';

/** Deterministic values in [-0.1, 0.1) without an RNG (the same every run). */
function values(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(seed * 97.13 + i * 12.9898) * 0.1);
}

function leaf(shape: number[], seed: number): Tensor {
  const t = Tensor.from(
    values(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    shape,
  );
  t.requiresGrad = true;
  return t;
}

/** The float32 bit patterns (bitwise equality: -0 vs 0 and NaN payloads count). */
function bits(t: Tensor): number[] {
  return Array.from(new Uint32Array(t.toFloat32Array().buffer));
}

function takeGrads(params: Tensor[]): number[][] {
  return params.map((p) => {
    if (!p.grad) throw new Error(`no gradient for ${p.describe()}`);
    const b = bits(p.grad);
    p.zeroGrad();
    return b;
  });
}

/** A pre-norm residual MLP block, h + W2 gelu(W1 rmsNorm(h) + b1). */
interface MlpWeights {
  norm: Tensor;
  w1: Tensor;
  b1: Tensor;
  w2: Tensor;
}

function mlpWeights(hidden: number, ffn: number, seed: number): MlpWeights {
  return {
    norm: leaf([hidden], seed),
    w1: leaf([ffn, hidden], seed + 1),
    b1: leaf([ffn], seed + 2),
    w2: leaf([hidden, ffn], seed + 3),
  };
}

function mlpBlock(w: MlpWeights, h: Tensor): Tensor {
  return add(h, linear(gelu(linear(rmsNorm(h, w.norm), w.w1, w.b1)), w.w2));
}

function disposeAll(ts: Tensor[]): void {
  for (const t of ts) {
    t.zeroGrad();
    t.dispose();
  }
}

describe('checkpoint: gradients', () => {
  it('a stack of MLP blocks: loss, parameter and input gradients bitwise equal to the plain run', () => {
    const [tokens, hidden, ffn, depth] = [12, 16, 48, 3];
    const blocks = Array.from({ length: depth }, (_, i) => mlpWeights(hidden, ffn, 10 * i));
    const x = leaf([tokens, hidden], 99);
    const inProj = leaf([hidden, hidden], 98);
    const probe = Tensor.from(values(tokens * hidden, 7), [tokens, hidden]);
    const params = [x, inProj, ...blocks.flatMap((b) => [b.norm, b.w1, b.b1, b.w2])];
    const run = (ckpt: boolean) =>
      tidy(() => {
        // The first block's input is computed (not a leaf): its gradient flows on to x and inProj.
        let h = linear(x, inProj);
        for (const w of blocks) h = ckpt ? checkpoint((input) => mlpBlock(w, input), [h]) : mlpBlock(w, h);
        const loss = sumAll(mul(h, probe));
        const value = bits(loss);
        loss.backward();
        return value;
      });
    const plainLoss = run(false);
    const plain = takeGrads(params);
    const ckptLoss = run(true);
    const ckpt = takeGrads(params);
    expect(ckptLoss).toEqual(plainLoss);
    for (let i = 0; i < params.length; i++) expect(ckpt[i], `gradient ${i}`).toEqual(plain[i]);
    // Not all zero: the comparison compared something.
    expect(plain.every((g) => g.some((b) => b !== 0))).toBe(true);
    disposeAll(params);
    probe.dispose();
  });

  it('runs fn once in the forward and once more in the backward, and not at all twice under noGrad', () => {
    const w = mlpWeights(8, 16, 1);
    const x = leaf([4, 8], 2);
    let calls = 0;
    const fn = (h: Tensor) => {
      calls += 1;
      return mlpBlock(w, h);
    };
    tidy(() => {
      const y = checkpoint(fn, [x]);
      expect(calls).toBe(1);
      expect(y.gradFn?.name).toBe('checkpoint');
      sumAll(y).backward();
      expect(calls).toBe(2);
    });
    tidy(() =>
      noGrad(() => {
        const y = checkpoint(fn, [x]);
        expect(calls).toBe(3);
        expect(y.requiresGrad).toBe(false);
        expect(y.gradFn).toBeNull();
      }),
    );
    disposeAll([x, w.norm, w.w1, w.b1, w.w2]);
  });

  it('retainGraph: a second backward recomputes again and accumulates as the plain run does', () => {
    const w = mlpWeights(8, 16, 3);
    const x = leaf([4, 8], 4);
    const params = [x, w.norm, w.w1, w.b1, w.w2];
    const twice = (ckpt: boolean) =>
      tidy(() => {
        // A computed input (a leaf input's two gradients would reach x.grad as one sum instead of
        // one by one, which may round differently once x.grad holds the first backward's value).
        const h0 = scale(x, 1.5);
        const y = ckpt ? checkpoint((h) => mlpBlock(w, h), [h0]) : mlpBlock(w, h0);
        const loss = sumAll(mul(y, y));
        loss.backward(undefined, { retainGraph: true });
        loss.backward();
      });
    twice(false);
    const plain = takeGrads(params);
    twice(true);
    expect(takeGrads(params)).toEqual(plain);
    disposeAll(params);
  });

  it('nested checkpoints (a checkpointed block made of checkpointed blocks) give the same bits', () => {
    const ws = [mlpWeights(8, 16, 5), mlpWeights(8, 16, 6)];
    const x = leaf([4, 8], 7);
    const params = [x, ...ws.flatMap((w) => [w.norm, w.w1, w.b1, w.w2])];
    const run = (ckpt: boolean) =>
      tidy(() => {
        const pair = (h: Tensor) =>
          ckpt
            ? checkpoint((a) => mlpBlock(ws[1], a), [checkpoint((a) => mlpBlock(ws[0], a), [h])])
            : mlpBlock(ws[1], mlpBlock(ws[0], h));
        const y = ckpt ? checkpoint(pair, [x]) : pair(x);
        sumAll(mul(y, y)).backward();
      });
    run(false);
    const plain = takeGrads(params);
    run(true);
    expect(takeGrads(params)).toEqual(plain);
    disposeAll(params);
  });

  it('inputs that need no gradient pass through; an output that depends on no input still trains the parameters', () => {
    const w = mlpWeights(8, 16, 8);
    const x = leaf([4, 8], 9);
    const bias = Tensor.from(values(8, 10), [8]); // requires no grad
    const constant = Tensor.from(values(32, 11), [4, 8]);
    const params = [w.norm, w.w1, w.b1, w.w2];
    // x and bias are inputs, x needing grad and bias not.
    tidy(() => sumAll(mlpBlock(w, add(x, bias))).backward());
    const plain = takeGrads([x, ...params]);
    tidy(() => sumAll(checkpoint((h, b) => mlpBlock(w, add(h, b!)), [x, bias])).backward());
    expect(takeGrads([x, ...params])).toEqual(plain);
    // The block ignores its input: only the parameters it closes over get gradients (non-reentrant
    // semantics: the output requires grad though its one input does not).
    tidy(() => sumAll(mlpBlock(w, constant)).backward());
    const plainParams = takeGrads(params);
    tidy(() => {
      const y = checkpoint(() => mlpBlock(w, constant), [x]);
      expect(y.requiresGrad).toBe(true);
      sumAll(y).backward();
    });
    expect(x.grad).toBeNull();
    expect(takeGrads(params)).toEqual(plainParams);
    // Nothing that requires grad at all: a plain tensor, no node.
    tidy(() => {
      const y = checkpoint((c) => scale(c, 2), [constant]);
      expect(y.requiresGrad).toBe(false);
      expect(y.gradFn).toBeNull();
      expect(Array.from(y.toFloat32Array())).toEqual(Array.from(scale(constant, 2).toFloat32Array()));
    });
    // The identity: the incoming gradient is the input's gradient.
    tidy(() =>
      sumAll(
        mul(
          checkpoint((h) => h, [x]),
          constant,
        ),
      ).backward(),
    );
    expect(bits(x.grad!)).toEqual(bits(constant));
    disposeAll([x, ...params, bias, constant]);
  });

  it('the inputs may be disposed after the forward: the node keeps what the recomputation reads', () => {
    const w = mlpWeights(8, 16, 12);
    const x = leaf([4, 8], 13);
    const params = [x, w.norm, w.w1, w.b1, w.w2];
    tidy(() => sumAll(mlpBlock(w, scale(x, 3))).backward());
    const plain = takeGrads(params);
    tidy(() => {
      const h = scale(x, 3);
      const y = checkpoint((a) => mlpBlock(w, a), [h]);
      h.dispose();
      sumAll(y).backward();
    });
    expect(takeGrads(params)).toEqual(plain);
    disposeAll(params);
  });
});

describe('checkpoint: errors', () => {
  it('a block that reads a computed tensor requiring grad from its closure is refused, naming it', () => {
    const x = leaf([4, 8], 14);
    tidy(() => {
      const outside = scale(x, 2);
      expect(() => checkpoint((h) => add(h, outside), [x])).toThrow(
        /reads Tensor \[4, 8\] float32 cpu made by scale outside it.*pass it in `inputs`/,
      );
    });
    x.dispose();
  });

  it('fn must return a Tensor, and inputs must be tensors', () => {
    const x = leaf([2], 15);
    expect(() => checkpoint((() => [x]) as unknown as () => Tensor, [x])).toThrow(
      /fn must return one Tensor \(the first time it returned object\)/,
    );
    expect(() => checkpoint((h) => h, [[1, 2] as unknown as Tensor])).toThrow(/inputs\[0\] is not a Tensor/);
    const gone = Tensor.from([1], [1]);
    gone.dispose();
    expect(() => checkpoint((h) => h, [gone])).toThrow(/checkpoint: inputs\[0\].*was disposed/);
    x.dispose();
  });

  it('a block that gives another shape when recomputed fails its backward with both shapes', () => {
    const x = leaf([6], 16);
    let first = true;
    tidy(() => {
      const y = checkpoint(
        (h) => {
          const out = first ? scale(h, 2) : narrow(h, 0, 0, 3);
          first = false;
          return out;
        },
        [x],
      );
      expect(() => sumAll(y).backward()).toThrow(/recomputed output is \[3\], the first run gave \[6\]/);
    });
    x.zeroGrad();
    x.dispose();
  });
});

describe('checkpoint: memory', () => {
  it('a stack of N blocks keeps one block output per block, not every activation (no leaks either)', () => {
    // 256 tokens x 64 hidden, ffn 256: a block output is 64 KiB. A plain block keeps for backward
    // its norm output (64 KiB) and rstd (1 KiB), fc1 and gelu outputs (256 KiB each), fc2's output
    // and the block output (64 KiB each): 721,920 bytes. Checkpointed, only the output remains.
    const [tokens, hidden, ffn] = [256, 64, 256];
    const outBytes = tokens * hidden * 4;
    const w = mlpWeights(hidden, ffn, 20); // shared by every block: the weights' gradients are the
    const x = leaf([tokens, hidden], 21); //  same size at any depth, so the peaks differ by activations
    const params = [x, w.norm, w.w1, w.b1, w.w2];
    // A forward whose output a tidy drops (no backward): the nodes release the inputs they held.
    const base = memoryStats();
    tidy(() => {
      let h: Tensor = x;
      for (let i = 0; i < 3; i++) h = checkpoint((a) => mlpBlock(w, a), [h]);
      expect(h.requiresGrad).toBe(true);
    });
    expect(memoryStats().currentBytes).toBe(base.currentBytes);
    expect(memoryStats().allocations).toBe(base.allocations);
    const measure = (depth: number, ckpt: boolean) => {
      const base = memoryStats();
      resetPeakMemory();
      let afterForward = 0;
      tidy(() => {
        let h: Tensor = x;
        for (let i = 0; i < depth; i++) h = ckpt ? checkpoint((a) => mlpBlock(w, a), [h]) : mlpBlock(w, h);
        const loss = sumAll(h);
        afterForward = memoryStats().currentBytes - base.currentBytes;
        loss.backward();
      });
      const peak = memoryStats().peakBytes - base.currentBytes;
      for (const p of params) p.zeroGrad();
      // Everything the forward and backward made is freed: same bytes and storages as before.
      const after = memoryStats();
      expect(after.currentBytes).toBe(base.currentBytes);
      expect(after.allocations).toBe(base.allocations);
      return { afterForward, peak };
    };
    const plain2 = measure(2, false);
    const plain6 = measure(6, false);
    const ckpt2 = measure(2, true);
    const ckpt6 = measure(6, true);
    // Measured (bytes): plain  N=2: forward 1,443,844, peak 2,163,972; N=6: 4,331,524, 5,051,652.
    //                   ckpt   N=2: forward   131,076, peak 1,312,004; N=6:   393,220, 1,574,148.
    // After the forward the checkpointed stack holds its block outputs and the scalar loss only.
    expect(ckpt2.afterForward).toBe(2 * outBytes + 4);
    expect(ckpt6.afterForward).toBe(6 * outBytes + 4);
    // Four more blocks: the checkpointed peak grows by their four outputs (one block is recomputed
    // at a time, whatever the depth); the plain peak by at least their fc1 and gelu outputs.
    expect(ckpt6.peak - ckpt2.peak).toBe(4 * outBytes);
    expect(plain6.peak - plain2.peak).toBeGreaterThanOrEqual(4 * (2 * tokens * ffn * 4 + outBytes));
    // Six checkpointed blocks peak below two plain ones.
    expect(ckpt6.peak).toBeLessThan(plain2.peak);
    disposeAll(params);
  });
});

describe('checkpoint: the tiny Qwen2-VL (fixtures/qwen2vl-tiny)', () => {
  const modelDir = dirname(fixturePath('qwen2vl-tiny/model.safetensors'));
  const model = Qwen2VLForConditionalGeneration.fromPretrained(modelDir);
  afterAll(() => model.dispose());
  const params = model.parameters();

  function inputsOf(f: Fixture) {
    const [batch, seqLen] = f.shape('input_ids');
    return {
      batch,
      seqLen,
      inputIds: f.i32('input_ids'),
      attentionMask: f.i32('attention_mask'),
      pixelValues: f.has('pixel_values')
        ? Tensor.from(f.f32('pixel_values'), f.shape('pixel_values'))
        : undefined,
      imageGridThw: f.has('image_grid_thw') ? f.i32('image_grid_thw') : undefined,
    };
  }

  /** Mean next-token cross-entropy over labels != -100 (as in qwen2vl-parity.test.ts). */
  function loss(hidden: Tensor, labels: Int32Array, batch: number, seqLen: number): Tensor {
    const targets = new Int32Array(batch * (seqLen - 1));
    for (let b = 0; b < batch; b++)
      for (let s = 1; s < seqLen; s++) targets[b * (seqLen - 1) + s - 1] = labels[b * seqLen + s];
    const count = targets.filter((t) => t !== -100).length;
    const lp = model.tokenLogprobs(
      narrow(hidden, 1, 0, seqLen - 1),
      Tensor.from(targets, [batch, seqLen - 1], { dtype: 'int32' }),
      { ignoreIndex: -100 },
    );
    return scale(sumAll(lp), -1 / count);
  }

  it('one decoder layer: input and parameter gradients bitwise equal', () => {
    const f = new Fixture(`qwen2vl-tiny/${MOST_IMAGES_CASE}.safetensors`);
    const inputs = inputsOf(f);
    const layerParams = model.namedParameters().filter(([n]) => n.startsWith('model.layers.0.'));
    expect(layerParams.length).toBe(12);
    // The layer's input: the fixture's embeddings as a leaf, and its M-RoPE tables and mask.
    const embeds = tidy(() => noGrad(() => model.embed(inputs).embeds));
    const h = embeds.detach();
    h.requiresGrad = true;
    const leaves = [h, ...layerParams.map(([, t]) => t)];
    const { positionIds } = noGrad(() => tidy(() => ({ positionIds: model.embed(inputs).positionIds })));
    const probe = Tensor.from(values(embeds.size, 30), embeds.shape);
    const run = (ckpt: boolean) =>
      tidy(() => {
        const { cos, sin } = model.ropeTables(positionIds, inputs.batch, inputs.seqLen);
        const keyMask = Tensor.from(inputs.attentionMask, [inputs.batch, inputs.seqLen], { dtype: 'int32' });
        // layer() is private: bracket access reaches it.
        const layer = (x: Tensor, c: Tensor, s: Tensor, m: Tensor | undefined) =>
          model.model['layer'](0, x, { hidden: x, cos: c, sin: s, keyMask: m });
        const y = ckpt ? checkpoint(layer, [h, cos, sin, keyMask]) : layer(h, cos, sin, keyMask);
        sumAll(mul(y, probe)).backward();
      });
    run(false);
    const plain = takeGrads(leaves);
    run(true);
    expect(takeGrads(leaves)).toEqual(plain);
    for (const p of params) p.zeroGrad();
    inputs.pixelValues?.dispose();
    for (const t of [embeds, h, probe]) t.dispose();
  });

  // The cases with images and parameter gradients (public set: case-single, case-batch).
  for (const name of fixtureCases('qwen2vl-tiny', { with: ['grad.', 'pixel_values'] })) {
    it(`${name}: gradientCheckpointing gives the same loss and every parameter's gradient bit for bit`, () => {
      const f = new Fixture(`qwen2vl-tiny/${name}.safetensors`);
      const inputs = inputsOf(f);
      const labels = f.i32('labels');
      const run = (gradientCheckpointing: boolean) => {
        for (const p of params) p.zeroGrad();
        const base = memoryStats();
        resetPeakMemory();
        const value = tidy(() => {
          const out = model.forward(inputs, { gradientCheckpointing });
          const l = loss(out.hidden, labels, inputs.batch, inputs.seqLen);
          l.backward();
          return bits(l);
        });
        const peak = memoryStats().peakBytes - base.currentBytes;
        const grads = params.map((p) => (p.grad ? bits(p.grad) : null));
        for (const p of params) p.zeroGrad();
        // No leak: with the gradients freed, the bytes and storages of before.
        expect(memoryStats().currentBytes).toBe(base.currentBytes);
        expect(memoryStats().allocations).toBe(base.allocations);
        return { value, peak, grads };
      };
      const plain = run(false);
      const ckpt = run(true);
      expect(ckpt.value).toEqual(plain.value);
      const names = model.namedParameters().map(([n]) => n);
      for (let i = 0; i < params.length; i++) expect(ckpt.grads[i], names[i]).toEqual(plain.grads[i]);
      // Every parameter took part (the vision tower too, with an image).
      const missing = plain.grads.filter((g) => g === null).length;
      expect(f.has('pixel_values')).toBe(true);
      expect(missing).toBe(0);
      // Measured peaks (bytes above the weights): case-single 1,478,696 plain, 1,010,472
      // checkpointed; case-batch 2,060,868 and 1,098,308 (2 decoder layers, 2 vision blocks).
      expect(ckpt.peak).toBeLessThan(plain.peak);
      inputs.pixelValues?.dispose();
    });
  }

  it('gradientCheckpointing with a KV cache is refused', () => {
    tidy(() => {
      const hidden = Tensor.zeros([1, 1, model.config.text.hiddenSize]);
      expect(() =>
        model.model.forward(
          { hidden, cos: hidden, sin: hidden },
          { gradientCheckpointing: true, cache: [{ k: null, v: null, capacity: 4, length: 0 }] },
        ),
      ).toThrow(/gradientCheckpointing is for training forwards: it cannot be used with a KV cache/);
    });
  });
});
