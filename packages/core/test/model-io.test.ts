import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cuda } from '@othink/native';
import { Fixture, fixtureCases, fixturePath } from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  memoryStats,
  noGrad,
  parameterShapes,
  parseQwen2VLConfig,
  Qwen2VLForConditionalGeneration,
  readSafetensorsHeader,
  readTensor,
  Tensor,
  tidy,
  writeSafetensors,
} from '../src/index.js';

const tinyDir = dirname(fixturePath('qwen2vl-tiny/model.safetensors'));
const tmp = mkdtempSync(join(tmpdir(), 'othink-model-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Qwen2-VL-2B-Instruct's config.json (qwen2vl-spec.md section 1). */
const config2b = {
  model_type: 'qwen2_vl',
  vocab_size: 151936,
  hidden_size: 1536,
  intermediate_size: 8960,
  num_hidden_layers: 28,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  tie_word_embeddings: true,
  eos_token_id: 151645,
  vision_config: {
    depth: 32,
    embed_dim: 1280,
    mlp_ratio: 4,
    num_heads: 16,
    in_chans: 3,
    hidden_size: 1536,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
  },
};

function logitsOf(model: Qwen2VLForConditionalGeneration): Float32Array {
  // The first case of the set with an image (any will do: both models must give the same logits).
  const [name] = fixtureCases('qwen2vl-tiny', { with: ['pixel_values', 'logits'] });
  const f = new Fixture(`qwen2vl-tiny/${name}.safetensors`);
  const [batch, seqLen] = f.shape('input_ids');
  return tidy(() =>
    noGrad(() => {
      const out = model.forward({
        batch,
        seqLen,
        inputIds: f.i32('input_ids'),
        pixelValues: Tensor.from(f.f32('pixel_values'), f.shape('pixel_values')),
        imageGridThw: f.i32('image_grid_thw'),
      });
      return model.logits(out.hidden).toFloat32Array();
    }),
  );
}

describe('loading and saving checkpoints', () => {
  it('savePretrained writes the hub layout (sharded when asked) and reloads exactly', () => {
    const model = Qwen2VLForConditionalGeneration.fromPretrained(tinyDir);
    const out = join(tmp, 'saved');
    model.savePretrained(out, { maxShardBytes: 300_000 });
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    const names = Object.keys(index.weight_map).sort();
    expect(names).toEqual(
      [...readSafetensorsHeader(join(tinyDir, 'model.safetensors')).entries.keys()].sort(),
    );
    expect(new Set(Object.values(index.weight_map)).size).toBeGreaterThan(1);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.model_type).toBe('qwen2_vl');
    expect(config.rope_scaling).toEqual({ type: 'mrope', mrope_section: [2, 3, 3] });
    const reloaded = Qwen2VLForConditionalGeneration.fromPretrained(out);
    for (const [name, p] of model.namedParameters())
      expect(reloaded.parameter(name).toFloat32Array()).toEqual(p.toFloat32Array());
    expect(logitsOf(reloaded)).toEqual(logitsOf(model));
    model.dispose();
    reloaded.dispose();
  });

  it('reads the transformers >= 4.52 names (model.visual.*, model.language_model.*) and an explicit lm_head', () => {
    const dir = join(tmp, 'new-layout');
    const src = readSafetensorsHeader(join(tinyDir, 'model.safetensors'));
    const renamed: [string, Tensor][] = [...src.entries].map(([name, e]) => [
      name.startsWith('visual.') ? `model.${name}` : name.replace(/^model\./, 'model.language_model.'),
      readTensor(e),
    ]);
    renamed.push(['lm_head.weight', readTensor(src.entries.get('model.embed_tokens.weight')!)]);
    mkdirSync(dir);
    writeSafetensors(join(dir, 'model.safetensors'), renamed);
    for (const [, t] of renamed) t.dispose();
    const json = JSON.parse(readFileSync(join(tinyDir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, tie_word_embeddings: false }));
    const model = Qwen2VLForConditionalGeneration.fromPretrained(dir);
    const reference = Qwen2VLForConditionalGeneration.fromPretrained(tinyDir);
    expect(model.parameter('lm_head.weight').shape).toEqual([json.vocab_size, json.hidden_size]);
    expect(logitsOf(model)).toEqual(logitsOf(reference));
    model.dispose();
    reference.dispose();
  });

  it('a missing or misshapen tensor is an error naming the file and the tensor', () => {
    const dir = join(tmp, 'broken');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(tinyDir, 'config.json'), join(dir, 'config.json'));
    const src = readSafetensorsHeader(join(tinyDir, 'model.safetensors'));
    const keep = [...src.entries]
      .filter(([name]) => name !== 'model.norm.weight')
      .map(([n, e]) => [n, readTensor(e)] as [string, Tensor]);
    writeSafetensors(join(dir, 'model.safetensors'), keep);
    expect(() => Qwen2VLForConditionalGeneration.fromPretrained(dir)).toThrow(
      /broken: tensor model.norm.weight is missing from the checkpoint/,
    );
    keep.push(['model.norm.weight', Tensor.zeros([63])]);
    writeSafetensors(join(dir, 'model.safetensors'), keep);
    expect(() => Qwen2VLForConditionalGeneration.fromPretrained(dir)).toThrow(
      /model.safetensors: tensor "model.norm.weight" has shape \[63\]; the config implies \[64\]/,
    );
    for (const [, t] of keep) t.dispose();
    const before = memoryStats().currentBytes;
    expect(() => Qwen2VLForConditionalGeneration.fromPretrained(dir)).toThrow();
    expect(memoryStats().currentBytes).toBe(before); // a failed load frees what it read
  });
});

describe('random initialisation', () => {
  it("Qwen2-VL-2B-Instruct's config has 2,208,985,600 parameters (spec 1.3)", () => {
    const shapes = parameterShapes(parseQwen2VLConfig(config2b));
    const count = [...shapes.values()].reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);
    expect(count).toBe(2_208_985_600);
  });

  it('fromConfig: HF-style init, reproducible from the seed', () => {
    const config = parseQwen2VLConfig(JSON.parse(readFileSync(join(tinyDir, 'config.json'), 'utf8')));
    const a = Qwen2VLForConditionalGeneration.fromConfig(config, { seed: 3 });
    const b = Qwen2VLForConditionalGeneration.fromConfig(config, { seed: 3 });
    const w = a.parameter('model.layers.0.mlp.gate_proj.weight').toFloat32Array();
    expect(w).toEqual(b.parameter('model.layers.0.mlp.gate_proj.weight').toFloat32Array());
    const mean = w.reduce((s, x) => s + x, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, x) => s + (x - mean) ** 2, 0) / w.length);
    // 8192 samples of N(0, 0.02^2): mean within 4 sigma / sqrt(n), std within 3%.
    expect(Math.abs(mean)).toBeLessThan((4 * 0.02) / Math.sqrt(w.length));
    expect(Math.abs(std / 0.02 - 1)).toBeLessThan(0.03);
    expect(Array.from(a.parameter('model.norm.weight').toFloat32Array())).toEqual(new Array(64).fill(1));
    expect(Math.max(...a.parameter('visual.blocks.0.attn.qkv.bias').toFloat32Array().map(Math.abs))).toBe(0);
    expect(a.numParameters()).toBe(194944);
    a.dispose();
    b.dispose();
  });

  it.skipIf(!process.env.OTHINK_LARGE_TESTS)(
    'instantiates Qwen2-VL-2B on the CPU (8.8 GB; OTHINK_LARGE_TESTS=1)',
    { timeout: 900_000 },
    () => {
      const model = Qwen2VLForConditionalGeneration.fromConfig(parseQwen2VLConfig(config2b), { seed: 1 });
      expect(model.numParameters()).toBe(2_208_985_600);
      expect(memoryStats().currentBytes).toBeGreaterThanOrEqual(2_208_985_600 * 4);
      model.dispose();
    },
  );

  it.skipIf(!cuda?.deviceInfo().available)(
    'instantiates Qwen2-VL-2B on CUDA (GPU machines)',
    { timeout: 900_000 },
    () => {
      const model = Qwen2VLForConditionalGeneration.fromConfig(parseQwen2VLConfig(config2b), {
        seed: 1,
        device: 'cuda',
      });
      expect(model.numParameters()).toBe(2_208_985_600);
      expect(model.parameter('model.norm.weight').device).toBe('cuda');
      expect(memoryStats('cuda').currentBytes).toBeGreaterThanOrEqual(2_208_985_600 * 4);
      model.dispose();
    },
  );
});
