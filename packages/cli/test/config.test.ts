import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  applySet,
  ConfigError,
  configToYaml,
  grpoBatch,
  isProblem,
  listPresets,
  loadRawConfig,
  loadRunConfig,
  mergeConfig,
  normalizeKeys,
  parseRunConfig,
  RunConfigSchema,
  resolveRunConfig,
  toCamelCase,
} from '../src/config/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'othink-config-'));

function write(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** The ConfigError message of `fn`. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults (paper / R1-V, paper-spec §6)', () => {
  it('an empty GRPO section gets R1-V / TRL values', () => {
    const c = RunConfigSchema.parse({ grpo: {} });
    expect(c.grpo).toMatchObject({
      numGenerations: 8,
      learningRate: 1e-6,
      temperature: 1.0,
      topK: 50,
      topP: 1.0,
      lossType: 'grpo',
      scaleRewards: 'group',
      klEstimator: 'k3',
      epsilon: 0.2,
      numIterations: 1,
      maxCompletionLength: 512,
      beta: { type: 'constant', beta: 0.04 },
      reward: { alpha: 1, accuracy: 'r1v', format: 'strict' },
    });
    expect(c.sft).toBeUndefined();
  });

  it('an empty SFT section gets R1-V SFT config values', () => {
    const c = RunConfigSchema.parse({ sft: {} });
    expect(c.sft).toMatchObject({
      learningRate: 2e-5,
      lrSchedulerType: 'cosine',
      warmupRatio: 0.1,
      perDeviceTrainBatchSize: 4,
      gradientAccumulationSteps: 4,
      numTrainEpochs: 1,
      maxLength: 4096,
    });
  });

  it('a number beta is a constant schedule; dynamic defaults w/t to 0.3', () => {
    const c = RunConfigSchema.parse({ grpo: { beta: { type: 'dynamic', betaMin: 0.04, betaMax: 0.1 } } });
    expect(c.grpo?.beta).toEqual({ type: 'dynamic', betaMin: 0.04, betaMax: 0.1, exploreFraction: 0.3 });
    expect(RunConfigSchema.parse({ grpo: { beta: 0.01 } }).grpo?.beta).toEqual({
      type: 'constant',
      beta: 0.01,
    });
  });

  it('phases can be switched off with null or false', () => {
    expect(RunConfigSchema.parse({ sft: null, grpo: false }).sft).toBeUndefined();
    expect(RunConfigSchema.parse({ sft: null, grpo: false }).grpo).toBeUndefined();
  });
});

describe('TRL snake_case names', () => {
  it('converts keys at every depth', () => {
    expect(toCamelCase('num_generations')).toBe('numGenerations');
    expect(toCamelCase('per_device_train_batch_size')).toBe('perDeviceTrainBatchSize');
    expect(toCamelCase('learningRate')).toBe('learningRate');
    const raw = normalizeKeys(
      {
        grpo: {
          num_generations: 4,
          max_completion_length: 64,
          beta: { type: 'dynamic', beta_min: 0, beta_max: 0.02 },
        },
      },
      'x',
    );
    expect(raw).toEqual({
      grpo: {
        numGenerations: 4,
        maxCompletionLength: 64,
        beta: { type: 'dynamic', betaMin: 0, betaMax: 0.02 },
      },
    });
  });

  it('a TRL-style YAML file validates with the same meaning', () => {
    const dir = tmp();
    const file = write(
      dir,
      'trl.yaml',
      [
        'model:',
        '  model_name_or_path: tiny',
        'sft: null',
        'grpo:',
        '  num_generations: 8',
        '  per_device_train_batch_size: 8',
        '  gradient_accumulation_steps: 2',
        '  learning_rate: 1.0e-6',
        '  max_completion_length: 256',
        '  beta: 0.04',
        '  epsilon: 0.2',
        '  epsilon_high: 0.28',
        '  loss_type: dr_grpo',
        '  scale_rewards: false',
        '  lr_scheduler_type: constant',
        '  warmup_ratio: 0.1',
        '  max_grad_norm: 1.0',
        '  num_train_epochs: 2',
      ].join('\n'),
    );
    const { config } = loadRunConfig({ file });
    expect(config.model.path).toBe('tiny');
    expect(config.grpo).toMatchObject({
      numGenerations: 8,
      perDeviceTrainBatchSize: 8,
      gradientAccumulationSteps: 2,
      learningRate: 1e-6,
      maxCompletionLength: 256,
      epsilonHigh: 0.28,
      lossType: 'dr_grpo',
      scaleRewards: 'none',
      lrSchedulerType: 'constant',
    });
    // TRL meaning of the batch: 8 x 2 = 16 completions = 2 prompts of G = 8.
    const r = resolveRunConfig(config, 100);
    expect(r.grpo).toMatchObject({
      promptsPerStep: 2,
      gradientAccumulationSteps: 2,
      maxSteps: 100,
      warmupSteps: 10,
    });
  });

  it('two spellings of one key are refused', () => {
    expect(
      errorOf(() => normalizeKeys({ grpo: { num_generations: 4, numGenerations: 8 } }, 'f.yaml')),
    ).toMatch(/f\.yaml: grpo\.num_generations and grpo\.numGenerations are the same setting/);
  });

  it('TRL keys that live elsewhere get a hint, typos a suggestion', () => {
    const msg = errorOf(() => parseRunConfig({ grpo: { saveSteps: 10, numGeneration: 4 } }));
    expect(msg).toContain(
      'Unrecognized key "saveSteps": checkpointing is set once for all phases: output.saveSteps',
    );
    expect(msg).toContain('Unrecognized key "numGeneration" (did you mean "numGenerations"?)');
    expect(msg).toContain('→ at grpo');
  });
});

describe('files, presets, overrides', () => {
  it('every preset validates and resolves', () => {
    const names = listPresets();
    expect(names).toEqual([
      'counting-grpo',
      'counting-grpo-d',
      'counting-sft',
      'default',
      'geometry-grpo',
      'geometry-grpo-d',
      'geometry-sft',
      'repro-base',
      'repro-grpo',
      'repro-grpo-d',
      'repro-sft',
    ]);
    for (const preset of names) {
      const { config } = loadRunConfig({ preset });
      const r = resolveRunConfig(config);
      expect(r.sft ?? r.grpo, preset).toBeDefined();
      // The resolved config is itself a valid config (config.resolved.yaml re-runs).
      const again = parseRunConfig(parse(configToYaml(r)));
      expect(resolveRunConfig(again, r.data.trainSize)).toEqual(r);
    }
  });

  it('presets carry the paper values', () => {
    const beta = (preset: string) => loadRunConfig({ preset }).config.grpo?.beta;
    expect(beta('counting-grpo')).toEqual({ type: 'constant', beta: 0.04 });
    expect(beta('geometry-grpo')).toEqual({ type: 'constant', beta: 0.01 });
    expect(beta('counting-grpo-d')).toEqual({
      type: 'dynamic',
      betaMin: 0.04,
      betaMax: 0.1,
      exploreFraction: 0.3,
    });
    expect(beta('geometry-grpo-d')).toEqual({
      type: 'dynamic',
      betaMin: 0,
      betaMax: 0.02,
      exploreFraction: 0.3,
    });
    const d = loadRunConfig({}).config;
    expect(d.name).toBe('default');
    expect(d.model.path).toBe('tiny');
    expect(d.sft).toBeDefined();
    expect(d.grpo?.beta).toEqual({ type: 'dynamic', betaMin: 0.04, betaMax: 0.1, exploreFraction: 0.3 });
    // R1-V: 100 counting samples, 16 prompts per step, 2 epochs -> ceil(100 / 16) * 2 = 14 steps.
    const r = resolveRunConfig(loadRunConfig({ preset: 'counting-grpo-d' }).config);
    expect(r.grpo?.maxSteps).toBe(14);
    expect(r.grpo?.gradientAccumulationSteps).toBe(16);
  });

  it('unknown preset names suggest the closest', () => {
    expect(errorOf(() => loadRunConfig({ preset: 'countng-grpo' }))).toMatch(
      /unknown preset "countng-grpo" \(did you mean "counting-grpo"\?\); presets: counting-grpo, /,
    );
  });

  it('JSON and YAML files, extends, then flags, then --set in order', () => {
    const dir = tmp();
    const json = write(
      dir,
      'a.json',
      JSON.stringify({ extends: 'counting-grpo-d', grpo: { num_generations: 4 } }),
    );
    const { config, sources } = loadRunConfig({
      file: json,
      flags: { maxSteps: 7, seed: 3, outputDir: 'runs/x' },
      set: ['grpo.beta.beta_max=0.2', 'eval.tasks=[counting]', 'grpo.learning_rate=1e-5'],
    });
    expect(sources[0]).toMatch(/counting-grpo-d\.yaml$/);
    expect(sources.slice(1)).toEqual([
      json,
      '--max-steps 7',
      '--seed 3',
      '--output-dir runs/x',
      '--set grpo.beta.beta_max=0.2',
      '--set eval.tasks=[counting]',
      '--set grpo.learning_rate=1e-5',
    ]);
    expect(config.grpo).toMatchObject({
      numGenerations: 4,
      maxSteps: 7,
      learningRate: 1e-5,
      beta: { type: 'dynamic', betaMin: 0.04, betaMax: 0.2, exploreFraction: 0.3 },
    });
    expect(config.sft).toBeUndefined();
    expect(config.seed).toBe(3);
    expect(config.output.dir).toBe('runs/x');
    expect(config.eval.tasks).toEqual(['counting']);
  });

  it('a preset with a config file on top; --max-steps sets every phase present', () => {
    const dir = tmp();
    const file = write(dir, 'b.yaml', 'grpo:\n  beta: 0.01\n');
    const { config } = loadRunConfig({ preset: 'default', file, flags: { maxSteps: 3 } });
    expect(config.sft?.maxSteps).toBe(3);
    expect(config.grpo?.maxSteps).toBe(3);
    // A beta of another type replaces the preset's dynamic one instead of merging into it.
    expect(config.grpo?.beta).toEqual({ type: 'constant', beta: 0.01 });
  });

  it('--set can switch a phase off and build sections', () => {
    const { config } = loadRunConfig({ set: ['sft=null', 'grpo.beta={type: constant, beta: 0}'] });
    expect(config.sft).toBeUndefined();
    expect(config.grpo?.beta).toEqual({ type: 'constant', beta: 0 });
    const raw: Record<string, unknown> = {};
    applySet(raw, 'model.tiny.num_hidden_layers=2');
    expect(raw).toEqual({ model: { tiny: { numHiddenLayers: 2 } } });
  });

  it('bad --set assignments say what is wrong', () => {
    expect(errorOf(() => applySet({}, 'grpo.beta'))).toMatch(/--set grpo\.beta: expected key\.path=value/);
    expect(errorOf(() => applySet({ grpo: { beta: 0.04 } }, 'grpo.beta.type.x=1'))).toMatch(
      /grpo\.beta is 0\.04, not a section/,
    );
  });

  it('bad files name the file and the line', () => {
    const dir = tmp();
    const yaml = write(dir, 'bad.yaml', 'grpo:\n  beta: [1, 2\n');
    expect(errorOf(() => loadRunConfig({ file: yaml }))).toMatch(/bad\.yaml: not valid YAML: .*line/s);
    const json = write(dir, 'bad.json', '{"grpo": }');
    expect(errorOf(() => loadRunConfig({ file: json }))).toMatch(/bad\.json: not valid JSON/);
    const list = write(dir, 'list.yaml', '- 1\n- 2\n');
    expect(errorOf(() => loadRunConfig({ file: list }))).toMatch(
      /list\.yaml: the top level must be a mapping/,
    );
    expect(errorOf(() => loadRunConfig({ file: join(dir, 'nope.yaml') }))).toMatch(
      /nope\.yaml does not exist/,
    );
    const loop = write(dir, 'loop.yaml', 'extends: ./loop.yaml\n');
    expect(errorOf(() => loadRunConfig({ file: loop }))).toMatch(/extend each other in a loop/);
  });

  it('type errors are listed with their paths, all at once', () => {
    const msg = errorOf(() =>
      loadRunConfig({ set: ['grpo.learningRate=fast', 'grpo.lossType=ppo', 'eval.testSize=-1'] }),
    );
    expect(msg).toMatch(/^invalid config \(.*default\.yaml \+ --set grpo\.learningRate=fast/);
    expect(msg).toMatch(/✖ Invalid input: expected number, received string\n {2}→ at grpo\.learningRate/);
    expect(msg).toMatch(/→ at grpo\.lossType/);
    expect(msg).toMatch(/→ at eval\.testSize/);
  });
});

describe('cross-field checks explain themselves', () => {
  it('the GRPO batch rule: micro-batches must divide promptsPerStep x G completions', () => {
    const msg = errorOf(() => parseRunConfig({ grpo: { perDeviceTrainBatchSize: 6, numGenerations: 8 } }));
    expect(msg).toContain(
      'perDeviceTrainBatchSize 6 must divide the 8 completions of a step (promptsPerStep 1 × numGenerations 8), which are split into equal micro-batches',
    );
    expect(msg).toContain('Use perDeviceTrainBatchSize 1, 2, 4 or 8, or promptsPerStep 3 (24 completions)');
    expect(msg).toContain('→ at grpo.perDeviceTrainBatchSize');
    // The suggested fix is accepted.
    expect(() => parseRunConfig({ grpo: { perDeviceTrainBatchSize: 6, promptsPerStep: 3 } })).not.toThrow();
  });

  it('TRL batch x accumulation must hold whole groups, and agree with promptsPerStep', () => {
    expect(
      errorOf(() => parseRunConfig({ grpo: { perDeviceTrainBatchSize: 6, gradientAccumulationSteps: 1 } })),
    ).toContain(
      'perDeviceTrainBatchSize 6 × gradientAccumulationSteps 1 = 6 completions per step is not a multiple of numGenerations 8',
    );
    expect(
      errorOf(() =>
        parseRunConfig({
          grpo: { perDeviceTrainBatchSize: 8, gradientAccumulationSteps: 2, promptsPerStep: 4 },
        }),
      ),
    ).toContain('= 16 completions, but promptsPerStep 4 × numGenerations 8 = 32');
  });

  it('batch arithmetic', () => {
    const g = (x: object) => {
      const b = grpoBatch(RunConfigSchema.parse({ grpo: x }).grpo!);
      if (isProblem(b)) throw new Error(b.message);
      return b;
    };
    expect(g({})).toEqual({ promptsPerStep: 1, completionsPerStep: 8, gradientAccumulationSteps: 1 });
    expect(g({ perDeviceTrainBatchSize: 4 })).toEqual({
      promptsPerStep: 1,
      completionsPerStep: 8,
      gradientAccumulationSteps: 2,
    });
    expect(g({ perDeviceTrainBatchSize: 16 })).toEqual({
      promptsPerStep: 2,
      completionsPerStep: 16,
      gradientAccumulationSteps: 1,
    });
    expect(g({ promptsPerStep: 16 })).toEqual({
      promptsPerStep: 16,
      completionsPerStep: 128,
      gradientAccumulationSteps: 16,
    });
  });

  it('G of 1, inverted beta range, tiny shapes, warm-up past the end', () => {
    expect(
      errorOf(() => parseRunConfig({ grpo: { numGenerations: 1, perDeviceTrainBatchSize: 1 } })),
    ).toContain(
      'numGenerations 1: GRPO compares the completions of a prompt with each other (group mean and std), so it needs at least 2',
    );
    expect(
      errorOf(() => parseRunConfig({ grpo: { beta: { type: 'dynamic', betaMin: 0.1, betaMax: 0.04 } } })),
    ).toMatch(/betaMax must be >= betaMin[^\n]*\n {2}→ at grpo\.beta\.betaMax/);
    expect(
      errorOf(() => parseRunConfig({ model: { tiny: { hiddenSize: 100, numAttentionHeads: 3 } } })),
    ).toContain('hiddenSize 100 is not divisible by numAttentionHeads 3');
    expect(errorOf(() => parseRunConfig({ model: { tiny: { numKeyValueHeads: 3 } } }))).toContain(
      'numAttentionHeads 4 is not a multiple of numKeyValueHeads 3',
    );
    expect(errorOf(() => parseRunConfig({ sft: { maxSteps: 5, warmupSteps: 10 } }))).toContain(
      'warmupSteps 10 is more than maxSteps 5',
    );
  });
});

describe('resolution', () => {
  it('steps from epochs, warm-up from its ratio (rounded up), seeds from the run seed', () => {
    const c = parseRunConfig({
      seed: 7,
      sft: { perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 4 },
      grpo: { promptsPerStep: 16 },
    });
    const r = resolveRunConfig(c, 100, new Date(2025, 2, 28, 9, 5, 3));
    expect(r.sft).toMatchObject({ maxSteps: 7, warmupSteps: 1, seed: 7 });
    expect(r.grpo).toMatchObject({ maxSteps: 14, warmupSteps: 0, seed: 7, epsilonHigh: 0.2 });
    expect(r.data).toMatchObject({ seed: 7, trainSize: 100 });
    expect(r.eval.tasks).toEqual(['counting']);
    expect(r.output.dir).toBe('runs/run-20250328-090503');
    expect(r.model).toMatchObject({ minPixels: 3136, maxPixels: 12544 });
  });

  it('explicit values win', () => {
    const c = parseRunConfig({ grpo: { maxSteps: 3, warmupSteps: 1, warmupRatio: 0.5, seed: 1 } });
    expect(resolveRunConfig(c, 100).grpo).toMatchObject({ maxSteps: 3, warmupSteps: 1, seed: 1 });
  });

  it('merge: objects by key, scalars and arrays replace', () => {
    expect(mergeConfig({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] }, d: 1 })).toEqual({
      a: { b: 1, c: [3] },
      d: 1,
    });
  });

  it('the raw config keeps the layer order', () => {
    const { raw } = loadRawConfig({ set: ['seed=1', 'seed=2'] });
    expect(raw.seed).toBe(2);
  });
});
