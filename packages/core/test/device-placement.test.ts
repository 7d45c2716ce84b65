// Device placement, checked on a machine without a GPU. Two guards:
//
// 1. A scan of packages/core/src: every `Tensor.empty(`, `Tensor.zeros(`, `Tensor.from(` and
//    `Tensor.scalar(` call must say where the tensor goes: its arguments name a device (`{ device:
//    x.device }`, `{ device }`, an options object called `device`), or a `// host: <why>` comment on
//    the call or directly above it explains why it is deliberately a host tensor (data read in JS
//    before an upload, a CPU-only initialiser), or a `// device: <why>` one says the caller's options
//    carry it. A literal `device: 'cpu'` needs the `// host:` reason too, so an op cannot pin its
//    output to the host quietly. Omitting the device is the bug this guards against: it silently
//    means the CPU, which works on a CPU-only machine and fails on the GPU at the next op. The scan
//    reads code only (comments and strings are blanked first), and the scanner is itself tested on
//    a synthetic source below, so it cannot pass by matching nothing.
//
// 2. An emulated 'cuda': in this file only, @othink/native's Storage is replaced by one that keeps
//    'cuda' memory on the host but reports device 'cuda' (the C++ kernels still see host memory and
//    run their CPU code). Every device check of the TypeScript layer (checkInputs, the model's,
//    Tensor.device) then sees two devices, so an op that puts an output, a statistic or a gradient
//    on the CPU while its inputs are on 'cuda' fails here exactly as it would on a GPU: by its
//    device, or by the next op refusing to mix devices. Reads and writes of 'cuda' storages are
//    counted, which turns "no device read in a forward or backward" and "each input uploaded once
//    per forward" into assertions. The values must equal the CPU run's bit for bit (same kernels).
//    What this cannot check: the CUDA kernels themselves, or TypeScript that calls a CUDA-only
//    entry point (it would get host pointers); cuda.test.ts and cuda-model.test.ts do that on a GPU.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as NativeModule from '@othink/native';
import { randomNormal, seededRandom } from '@othink/testing';
import { afterAll, describe, expect, it, vi } from 'vitest';

// ---------------------------------------------------------------------------------------------
// The emulated device (hoisted above the imports that load @othink/native through the core).

const io = vi.hoisted(() => ({ uploads: 0, downloads: 0 }));

vi.mock('@othink/native', async (importOriginal) => {
  const real = await importOriginal<typeof NativeModule>();
  type Storage = InstanceType<typeof real.Storage>;
  // Called with `new`: returning an object makes it the result.
  function EmulatedStorage(byteLength: number, device: 'cpu' | 'cuda' = 'cpu', zero = true): Storage {
    const storage = new real.Storage(byteLength, 'cpu', zero);
    const copyFrom = storage.copyFrom.bind(storage);
    const onDevice = device === 'cuda';
    // Own properties shadow the native accessors; the addon unwraps the same native object.
    Object.defineProperty(storage, 'copyFrom', {
      value: (src: Storage, srcOffset: number, dstOffset: number, bytes: number) => {
        if (onDevice && src.device === 'cpu') io.uploads += 1;
        if (!onDevice && src.device === 'cuda') io.downloads += 1;
        copyFrom(src, srcOffset, dstOffset, bytes);
      },
    });
    if (onDevice) {
      const read = storage.read.bind(storage);
      const write = storage.write.bind(storage);
      Object.defineProperties(storage, {
        device: { value: 'cuda' },
        read: {
          value: (dst: ArrayBufferView, offset?: number) => {
            io.downloads += 1;
            read(dst, offset);
          },
        },
        write: {
          value: (src: ArrayBufferView, offset?: number) => {
            io.uploads += 1;
            write(src, offset);
          },
        },
      });
    }
    return storage;
  }
  return { ...real, Storage: EmulatedStorage };
});

import {
  AdamW,
  add,
  attention,
  clipGradNorm,
  clone,
  concat,
  type Device,
  embedding,
  gelu,
  type LayerCache,
  layerNorm,
  linear,
  maskedScatterRows,
  matmul,
  mean,
  mropeCosSin,
  mul,
  narrow,
  noGrad,
  parseQwen2VLConfig,
  Qwen2VLForConditionalGeneration,
  quickGelu,
  rmsNorm,
  ropeInvFreq,
  rotary,
  scale,
  split,
  sub,
  sum,
  sumAll,
  sumRows,
  swiglu,
  Tensor,
  tidy,
  visionRotaryCosSin,
  writeSlice,
} from '../src/index.js';
import {
  inputsOf,
  loadCase,
  MOST_IMAGES_CASE,
  ONE_IMAGE_CASE,
  TEXT_CASE,
  TINY_MODEL_DIR,
} from './qwen2vl-fixture.js';

// ---------------------------------------------------------------------------------------------
// 1. The source scan.

const SRC = join(dirname(fileURLToPath(import.meta.url)), '../src');

/** The source with comments and string / template contents blanked (newlines kept). */
function codeOnly(text: string): string {
  const out = text.split('');
  let i = 0;
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let k = i + 1;
      while (k < text.length && text[k] !== c) k += text[k] === '\\' ? 2 : 1;
      blank(i + 1, k);
      i = k + 1;
    } else {
      i += 1;
    }
  }
  return out.join('');
}

interface Call {
  file: string;
  line: number;
  /** The call as written, whitespace collapsed. */
  text: string;
  problem?: string;
}

const MARKER = /\/\/\s*(host|device):\s*\S/;
const HOST_MARKER = /\/\/\s*host:\s*\S/;

/** The factory calls of one file, each with what is wrong with it (if anything). */
function scanSource(file: string, text: string): Call[] {
  const code = codeOnly(text);
  const lines = text.split('\n');
  const lineOf = (pos: number) => text.slice(0, pos).split('\n').length; // 1-based
  const calls: Call[] = [];
  for (const m of code.matchAll(/\bTensor\.(empty|zeros|from|scalar)\(/g)) {
    const open = m.index + m[0].length - 1;
    let depth = 0;
    let close = open;
    for (; close < code.length; close++) {
      if (code[close] === '(') depth += 1;
      else if (code[close] === ')' && --depth === 0) break;
    }
    const args = text.slice(open + 1, close);
    const first = lineOf(m.index);
    const last = lineOf(close);
    // Comments that speak for the call: on its lines, and the comment lines right above it.
    const comments = lines.slice(first - 1, last);
    for (let l = first - 2; l >= 0 && /^\s*\/\//.test(lines[l]); l--) comments.push(lines[l]);
    const marked = comments.some((l) => MARKER.test(l));
    const hostMarked = comments.some((l) => HOST_MARKER.test(l));
    const namesDevice = /\bdevice\b/.test(code.slice(open + 1, close));
    const pinsCpu = /\bdevice\s*:\s*['"]cpu['"]/.test(args);
    let problem: string | undefined;
    if (pinsCpu && !hostMarked) problem = "device 'cpu' without a `// host:` reason";
    else if (!namesDevice && !marked) problem = 'no device (it would default to the CPU)';
    calls.push({ file, line: first, text: text.slice(m.index, close + 1).replace(/\s+/g, ' '), problem });
  }
  return calls;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

describe('every tensor made in packages/core/src names its device', () => {
  const calls = sourceFiles(SRC).flatMap((path) =>
    scanSource(relative(SRC, path).split('\\').join('/'), readFileSync(path, 'utf8')),
  );

  it('the scanner flags what it should and nothing else', () => {
    const sample = [
      'const a = Tensor.empty(x.shape);', // 1: no device
      'const b = Tensor.zeros(shape, { device: x.device });', // 2: fine
      'const c = Tensor.from(values, [n, 2], {', // 3-6: multi-line, fine
      "  dtype: 'int32',",
      '  device,',
      '});',
      "const d = Tensor.from(v, [n], { device: 'cpu' });", // 7: pinned to the host, no reason
      '// host: read in JS, then uploaded', // 8
      "const e = Tensor.from(v, [n], { device: 'cpu' });", // 9: fine (reason above)
      'return Tensor.from([v], [], options); // device: the caller says', // 10: fine
      '// Tensor.empty(shape) in a comment is not a call', // 11
      "const s = 'Tensor.zeros(shape)';", // 12: nor in a string
      "const f = Tensor.scalar(1, { dtype: 'float32' }); // the device", // 13: a comment is no marker
      "const g = Tensor.empty(f(x, ')'), { device: t.device });", // 14: a paren in a string, fine
    ].join('\n');
    const found = scanSource('sample.ts', sample);
    expect(found.map((c) => [c.line, c.problem ?? 'ok'])).toEqual([
      [1, 'no device (it would default to the CPU)'],
      [2, 'ok'],
      [3, 'ok'],
      [7, "device 'cpu' without a `// host:` reason"],
      [9, 'ok'],
      [10, 'ok'],
      [13, 'no device (it would default to the CPU)'],
      [14, 'ok'],
    ]);
  });

  it('finds the calls of the tensor layer, the model, the optimizer and the trainers', () => {
    const files = new Set(calls.map((c) => c.file));
    for (const f of ['tensor/tensor.ts', 'tensor/ops/norm.ts', 'model/qwen2vl.ts', 'optim/adamw.ts'])
      expect(files, f).toContain(f);
    expect(calls.length).toBeGreaterThan(50);
  });

  it('no call leaves its device to the default', () => {
    const bad = calls.filter((c) => c.problem);
    expect(bad.map((c) => `${c.file}:${c.line}: ${c.problem}: ${c.text}`)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The emulated device: ops.

function rand(n: number, seed: number): Float32Array {
  return randomNormal(n, seededRandom(seed), 1);
}

/** A leaf that requires grad. */
function leaf(shape: number[], seed: number, device: Device): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(rand(n, seed), shape, { device, requiresGrad: true });
}

/** Backpropagates a random seed through `out`; returns out and the leaves' gradients. */
function withGrads(out: Tensor, leaves: Tensor[], seed: number): Tensor[] {
  out.backward(Tensor.from(rand(out.size, seed), out.shape, { device: out.device }));
  return [out, ...leaves.map((l) => l.grad!)];
}

const int32 = (values: number[], shape: number[], device: Device) =>
  Tensor.from(Int32Array.from(values), shape, { dtype: 'int32', device });

/** Each case builds its inputs on `device`, runs forward and backward, and returns what to check. */
const OP_CASES: Record<string, (device: Device) => Tensor[]> = {
  'add / sub / mul with a broadcast operand (its gradient summed back)': (d) => {
    const [a, b] = [leaf([3, 4], 1, d), leaf([4], 2, d)];
    return withGrads(add(mul(sub(a, b), b), a), [a, b], 3);
  },
  'scale, clone, sum and mean over an axis, sumAll': (d) => {
    const a = leaf([2, 3, 4], 4, d);
    const s = add(sum(scale(a, 2, 1), 1, true), mean(clone(a), 1, true));
    return withGrads(add(s, sumAll(a)), [a], 5);
  },
  'batched matmul with a shared operand, transposes, linear with bias, sumRows': (d) => {
    const [a, b, w, bias] = [leaf([2, 3, 4], 6, d), leaf([4, 5], 7, d), leaf([6, 5], 8, d), leaf([6], 9, d)];
    const y = linear(matmul(a, b), w, bias);
    const t = matmul(y.reshape([6, 6]), y.reshape([6, 6]), { transA: true, transB: true });
    return withGrads(add(t, sumRows(y)), [a, b, w, bias], 10);
  },
  'matmul over an empty inner dimension: zeros': (d) => {
    const [a, b] = [leaf([2, 0], 11, d), leaf([0, 3], 12, d)];
    return withGrads(matmul(a, b), [a, b], 13);
  },
  'concat, split, narrow, slice, reshape, to the same device': (d) => {
    const [a, b] = [leaf([2, 3], 14, d), leaf([2, 2], 15, d)];
    const c = concat([a, b], 1);
    const [p, q] = split(c, [1, 4], 1);
    const r = concat([narrow(q, 1, 1, 2), p], 1).reshape([6]);
    const row = c.slice(1, 2).reshape([-1]).to(d);
    return withGrads(concat([r, row], 0), [a, b], 16);
  },
  'swiglu, gelu, quickGelu': (d) => {
    const [g, u] = [leaf([3, 5], 17, d), leaf([3, 5], 18, d)];
    return withGrads(add(swiglu(g, u), quickGelu(gelu(g))), [g, u], 19);
  },
  'rmsNorm and layerNorm (output, statistics, gradients)': (d) => {
    const [x, w, b] = [leaf([2, 3, 8], 20, d), leaf([8], 21, d), leaf([8], 22, d)];
    return withGrads(layerNorm(rmsNorm(x, w, 1e-6), w, b, 1e-5), [x, w, b], 23);
  },
  'rmsNorm and layerNorm of an empty input: zero gradients': (d) => {
    const [x, w] = [leaf([0, 4], 24, d), leaf([4], 25, d)];
    const [lx, lw, lb] = [leaf([0, 4], 26, d), leaf([4], 27, d), leaf([4], 28, d)];
    return [...withGrads(rmsNorm(x, w), [x, w], 29), ...withGrads(layerNorm(lx, lw, lb), [lx, lw, lb], 30)];
  },
  'embedding, and an empty lookup': (d) => {
    const table = leaf([6, 4], 28, d);
    const e = embedding(int32([5, 0, 2, 2, 1, 5], [2, 3], d), table);
    const none = embedding(int32([], [0], d), table);
    return [...withGrads(e, [table], 29), none];
  },
  'maskedScatterRows, and an empty one': (d) => {
    const [base, source] = [leaf([5, 3], 30, d), leaf([2, 3], 31, d)];
    const out = maskedScatterRows(base, int32([0, 1, 0, 1, 0], [5], d), source);
    const [eb, es] = [leaf([0, 3], 32, d), leaf([0, 3], 33, d)];
    const empty = maskedScatterRows(eb, int32([], [0], d), es);
    return [...withGrads(out, [base, source], 34), ...withGrads(empty, [eb, es], 35)];
  },
  'attention: causal GQA with a key mask, vision segments, no queries': (d) => {
    const [q, k, v] = [leaf([2, 4, 4, 8], 36, d), leaf([2, 4, 2, 8], 37, d), leaf([2, 4, 2, 8], 38, d)];
    const keyMask = int32([0, 1, 1, 1, 1, 1, 1, 1], [2, 4], d);
    const causal = attention(q, k, v, { causal: true, keyMask });
    const [vq, vk, vv] = [leaf([5, 2, 8], 39, d), leaf([5, 2, 8], 40, d), leaf([5, 2, 8], 41, d)];
    const segments = attention(vq, vk, vv, { causal: false, cuSeqlens: [0, 2, 5] });
    const [eq, ek, ev] = [leaf([1, 0, 2, 8], 42, d), leaf([1, 3, 2, 8], 43, d), leaf([1, 3, 2, 8], 44, d)];
    const none = attention(eq, ek, ev, { causal: true });
    return [
      ...withGrads(causal, [q, k, v], 45),
      ...withGrads(segments, [vq, vk, vv], 46),
      ...withGrads(none, [eq, ek, ev], 47),
    ];
  },
  'rotary with M-RoPE and vision tables built for the device': (d) => {
    // host: positions are read in JS by the table builders (as the model does).
    const pos = Tensor.from(Int32Array.from([0, 1, 2, 0, 1, 1, 0, 1, 3]), [3, 1, 3], { device: 'cpu' });
    const { cos, sin } = mropeCosSin(pos, ropeInvFreq(8, 1e6), [2, 1, 1], { device: d });
    // host: as above.
    const rot = Tensor.from(Int32Array.from([0, 0, 0, 1, 1, 0]), [3, 2], { device: 'cpu' });
    const vision = visionRotaryCosSin(rot, 8, 10000, { device: d });
    const [x, y] = [leaf([1, 3, 2, 8], 48, d), leaf([3, 2, 8], 49, d)];
    const out = add(rotary(x, cos, sin).reshape([3, 2, 8]), rotary(y, vision.cos, vision.sin));
    return [cos, sin, vision.cos, vision.sin, ...withGrads(out, [x, y], 50)];
  },
  'writeSlice into a preallocated buffer': (d) => {
    const buffer = Tensor.zeros([2, 4, 3], { device: d });
    writeSlice(Tensor.from(rand(6, 51), [2, 1, 3], { device: d }), buffer, 1, 2);
    return [buffer];
  },
};

describe("ops on an emulated 'cuda': every output and gradient there, values as on the CPU", () => {
  for (const [name, run] of Object.entries(OP_CASES)) {
    it(name, () => {
      const results = (device: Device) =>
        tidy(() => {
          const tensors = run(device);
          const out = tensors.map((t) => ({ device: t.device, values: Array.from(t.toTypedArray()) }));
          for (const t of tensors) t.dispose(); // gradients are kept out of tidy: free them here
          return out;
        });
      const onCpu = results('cpu');
      const onGpu = results('cuda');
      expect(onGpu.map((r) => r.device)).toEqual(onGpu.map(() => 'cuda'));
      expect(onGpu.map((r) => r.values)).toEqual(onCpu.map((r) => r.values));
    });
  }

  it('a leaf moved to the device gets its gradient on its own device', () => {
    tidy(() => {
      const x = leaf([3], 52, 'cpu');
      sumAll(scale(x.to('cuda'), 2)).backward();
      expect(x.grad?.device).toBe('cpu');
      expect(Array.from(x.grad!.toFloat32Array())).toEqual([2, 2, 2]);
      x.zeroGrad();
    });
  });

  it('ops refuse to mix devices, and backward refuses a seed on another device', () => {
    tidy(() => {
      const a = leaf([2], 53, 'cuda');
      expect(() => add(a, Tensor.from([1, 2], [2], { device: 'cpu' }))).toThrow(
        /a is on cuda but b is on cpu/,
      );
      const y = scale(a, 2);
      expect(() => y.backward(Tensor.from([1, 1], [2], { device: 'cpu' }))).toThrow(
        /backward: gradient is on cpu but the tensor is on cuda/,
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The emulated device: the model, its optimizer.

const onCpu = Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR);
const onGpu = Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR, { device: 'cuda' });
afterAll(() => {
  onCpu.dispose();
  onGpu.dispose();
});

const valuesOf = (t: Tensor) => Array.from(t.toTypedArray());

/** Host <-> 'cuda' transfers made by fn. */
function transfers<T>(fn: () => T): { result: T; uploads: number; downloads: number } {
  io.uploads = 0;
  io.downloads = 0;
  const result = fn();
  return { result, uploads: io.uploads, downloads: io.downloads };
}

/**
 * A forward with every hidden state and a backward of sum(hidden * w) (generic ops only: the loss
 * kernels are not this suite's subject), with what each moved between host and device.
 */
function trainingPass(model: Qwen2VLForConditionalGeneration, name: string) {
  const f = loadCase(name);
  const inputs = inputsOf(f);
  for (const p of model.parameters()) p.zeroGrad();
  const result = tidy(() => {
    const h = model.config.text.hiddenSize;
    const w = Tensor.from(rand(inputs.batch * inputs.seqLen * h, 60), [inputs.batch, inputs.seqLen, h], {
      device: model.device,
    });
    const forward = transfers(() => model.forward(inputs, { outputHiddenStates: true }));
    const out = forward.result;
    const activations = [out.inputsEmbeds, ...out.hiddenStates!, out.hidden];
    if (out.visionEmbeds) activations.push(out.visionEmbeds);
    const backward = transfers(() => sumAll(mul(out.hidden, w)).backward());
    return {
      forward: { uploads: forward.uploads, downloads: forward.downloads },
      backward: { uploads: backward.uploads, downloads: backward.downloads },
      devices: activations.map((t) => t.device),
      activations: activations.map(valuesOf),
    };
  });
  // Text-only cases leave the vision tower without gradients.
  const grads = model
    .namedParameters()
    .filter(([, p]) => p.grad)
    .map(([n, p]) => ({ name: n, device: p.grad!.device, values: valuesOf(p.grad!) }));
  for (const p of model.parameters()) p.zeroGrad();
  return { ...result, grads };
}

describe("the model on an emulated 'cuda'", () => {
  it('fromPretrained({ device }) puts every weight there, as loaded on the CPU', () => {
    expect(onGpu.device).toBe('cuda');
    expect(onCpu.device).toBe('cpu');
    const cpuParams = onCpu.namedParameters();
    onGpu.namedParameters().forEach(([name, p], i) => {
      expect(p.device, name).toBe('cuda');
      expect(p.requiresGrad, name).toBe(true);
      expect(valuesOf(p), name).toEqual(valuesOf(cpuParams[i][1]));
    });
  });

  // Uploads per forward, each once: ids, the key mask, the M-RoPE cos and sin; with images also
  // the pixel values, the vision rotary cos and sin, and the image-token mask. Nothing per layer.
  for (const [name, uploads] of [
    [MOST_IMAGES_CASE, 8],
    [TEXT_CASE, 4],
  ] as const) {
    it(`${name}: forward and backward stay on the device, read nothing back, upload each input once`, () => {
      const gpu = trainingPass(onGpu, name);
      const cpu = trainingPass(onCpu, name);
      expect(gpu.forward).toEqual({ uploads, downloads: 0 });
      // The backward uploads its seed (the 1 of d loss / d loss) and reads nothing.
      expect(gpu.backward).toEqual({ uploads: 1, downloads: 0 });
      expect(gpu.devices).toEqual(gpu.devices.map(() => 'cuda'));
      expect(gpu.activations).toEqual(cpu.activations);
      expect(gpu.grads.map((g) => g.device)).toEqual(gpu.grads.map(() => 'cuda'));
      // Every parameter has a gradient, but the vision tower's in a text-only case.
      const vision = onGpu.namedParameters().filter(([n]) => n.startsWith('visual.')).length;
      const expected = onGpu.parameters().length - (name === TEXT_CASE ? vision : 0);
      expect(gpu.grads.map((g) => g.name)).toEqual(cpu.grads.map((g) => g.name));
      expect(gpu.grads).toHaveLength(expected);
      gpu.grads.forEach((g, i) => {
        expect(g.values, `grad ${g.name}`).toEqual(cpu.grads[i].values);
      });
    });
  }

  it('pixel values: host values are uploaded, a tensor must already be on the device', () => {
    const inputs = inputsOf(loadCase(ONE_IMAGE_CASE));
    const pixels = inputs.pixelValues as Float32Array;
    const patchDim = 1176;
    tidy(() =>
      noGrad(() => {
        const fromHost = onGpu.forward(inputs).hidden;
        const onDevice = Tensor.from(pixels, [pixels.length / patchDim, patchDim], { device: 'cuda' });
        expect(valuesOf(onGpu.forward({ ...inputs, pixelValues: onDevice }).hidden)).toEqual(
          valuesOf(fromHost),
        );
        const onHost = Tensor.from(pixels, [pixels.length / patchDim, patchDim], { device: 'cpu' });
        expect(() => onGpu.forward({ ...inputs, pixelValues: onHost })).toThrow(
          /pixelValues is on cpu but the model is on cuda: pass a Float32Array/,
        );
        expect(() => onGpu.forward({ ...inputs, pixelValues: pixels.subarray(1) })).toThrow(
          /not a whole number of patches of 1176/,
        );
      }),
    );
  });

  it('decode() with a host key mask: the prefill matches forward, the KV cache is on the device', () => {
    const inputs = inputsOf(loadCase(TEXT_CASE));
    const cache: LayerCache[] = Array.from({ length: onGpu.config.text.numHiddenLayers }, () => ({
      k: null,
      v: null,
      capacity: inputs.seqLen,
      length: 0,
    }));
    tidy(() =>
      noGrad(() => {
        const { embeds, positionIds } = onGpu.embed(inputs);
        const hidden = onGpu.decode(embeds, positionIds, inputs.attentionMask!, cache);
        expect(hidden.device).toBe('cuda');
        expect(valuesOf(hidden)).toEqual(valuesOf(onGpu.forward(inputs).hidden));
        for (const c of cache) expect([c.k?.device, c.v?.device]).toEqual(['cuda', 'cuda']);
      }),
    );
    for (const c of cache) {
      c.k?.dispose();
      c.v?.dispose();
    }
  });

  it('AdamW keeps its moments on the device; clipping and the update read nothing back', () => {
    const run = (model: Qwen2VLForConditionalGeneration) => {
      const copy = model.copy({ requiresGrad: true });
      const opt = new AdamW(copy.parameters(), { lr: 1e-3, weightDecay: 0.01 });
      tidy(() => {
        const inputs = inputsOf(loadCase(ONE_IMAGE_CASE));
        const out = copy.forward(inputs);
        sumAll(mul(out.hidden, out.hidden)).backward();
      });
      const step = transfers(() => {
        const norm = clipGradNorm(copy.parameters(), 1);
        opt.update();
        return norm;
      });
      const moments = opt.state().moments;
      const result = {
        step: { uploads: step.uploads, downloads: step.downloads, norm: step.result.totalNorm },
        devices: [...copy.parameters(), ...moments.flatMap(({ m, v }) => [m, v])].map((t) => t.device),
        params: copy.parameters().map(valuesOf),
        moments: moments.map(({ m, v }) => [valuesOf(m), valuesOf(v)]),
      };
      opt.zeroGrad();
      opt.dispose();
      copy.dispose();
      return result;
    };
    const gpu = run(onGpu);
    const cpu = run(onCpu);
    expect(gpu.step).toEqual({ uploads: 0, downloads: 0, norm: cpu.step.norm });
    expect(gpu.devices).toEqual(gpu.devices.map(() => 'cuda'));
    expect(gpu.params).toEqual(cpu.params);
    expect(gpu.moments).toEqual(cpu.moments);
  });

  it('to(device) moves the weights and their gradients in place; copy() stays on the device', () => {
    const model = Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR);
    const old = model.parameters();
    const embed = model.parameter('model.embed_tokens.weight');
    embed.grad = Tensor.from(rand(embed.size, 61), embed.shape, { device: 'cpu' });
    const grad = valuesOf(embed.grad);
    const moved = transfers(() => model.to('cuda'));
    expect(moved.result).toBe(model);
    expect(model.device).toBe('cuda');
    // One copy per weight, and one for the gradient; nothing read back.
    expect(moved).toMatchObject({ uploads: old.length + 1, downloads: 0 });
    expect(old.every((p) => p.isDisposed)).toBe(true);
    const cpuParams = onCpu.parameters();
    model.parameters().forEach((p, i) => {
      expect([p.device, p.requiresGrad]).toEqual(['cuda', true]);
      expect(valuesOf(p)).toEqual(valuesOf(cpuParams[i]));
    });
    const movedEmbed = model.parameter('model.embed_tokens.weight');
    expect(movedEmbed.grad?.device).toBe('cuda');
    expect(valuesOf(movedEmbed.grad!)).toEqual(grad);
    movedEmbed.zeroGrad();
    expect(model.to('cuda')).toBe(model); // already there: nothing to do
    const copy = transfers(() => model.copy());
    expect(copy).toMatchObject({ uploads: 0, downloads: 0 });
    expect(copy.result.device).toBe('cuda');
    expect(copy.result.parameters().every((p) => !p.requiresGrad && p.device === 'cuda')).toBe(true);
    copy.result.dispose();
    model.dispose();
  });

  it('fromConfig({ device }) initialises on the host and gives the same weights as on the CPU', () => {
    const config = parseQwen2VLConfig(
      JSON.parse(readFileSync(join(TINY_MODEL_DIR, 'config.json'), 'utf8')),
      'tiny config',
    );
    const gpu = Qwen2VLForConditionalGeneration.fromConfig(config, { seed: 4, device: 'cuda' });
    const cpu = Qwen2VLForConditionalGeneration.fromConfig(config, { seed: 4 });
    expect(gpu.device).toBe('cuda');
    expect(gpu.parameters().map(valuesOf)).toEqual(cpu.parameters().map(valuesOf));
    gpu.dispose();
    cpu.dispose();
  });

  it('placement options: bf16 is not yet supported, unknown devices and dtypes are errors', () => {
    const load = (options: object) => () =>
      Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR, options as { device?: Device });
    expect(load({ dtype: 'bfloat16' })).toThrow(
      /fromPretrained: dtype 'bfloat16' is not yet supported \(the ops compute in float32/,
    );
    expect(load({ device: 'tpu' })).toThrow(/fromPretrained: device must be 'cpu' or 'cuda' \(got "tpu"\)/);
    expect(load({ dtype: 'float16' })).toThrow(/dtype must be 'float32' or 'bfloat16' \(got "float16"\)/);
    expect(() => onGpu.to('tpu' as Device)).toThrow(/to: device must be 'cpu' or 'cuda'/);
    const config = parseQwen2VLConfig(
      JSON.parse(readFileSync(join(TINY_MODEL_DIR, 'config.json'), 'utf8')),
      'tiny config',
    );
    expect(() => Qwen2VLForConditionalGeneration.fromConfig(config, { dtype: 'bfloat16' })).toThrow(
      /fromConfig: dtype 'bfloat16' is not yet supported/,
    );
    const ok = Qwen2VLForConditionalGeneration.fromPretrained(TINY_MODEL_DIR, { dtype: 'float32' });
    expect(ok.dtype).toBe('float32');
    ok.dispose();
  });
});
