// Reading a run config: a preset and / or a YAML or JSON file (with `extends:`), then the common
// flags and `--set key.path=value` overrides, validated by the zod schema with readable errors.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { type ZodError, z } from 'zod';
import { checkRunConfig } from './checks.js';
import { ConfigError } from './errors.js';
import { closestKey, KEY_HINTS, normalizeKeys, toCamelCase } from './keys.js';
import {
  DataSchema,
  EvalSchema,
  GrpoSchema,
  ModelSchema,
  OutputSchema,
  RewardSchema,
  type RunConfig,
  RunConfigSchema,
  SftSchema,
  SyntheticSchema,
  TinyModelSchema,
} from './schema.js';

type Raw = Record<string, unknown>;

/** The folder of the bundled presets (`packages/cli/presets`, same depth from src/ and dist/). */
export function presetsDir(): string {
  return fileURLToPath(new URL('../../presets/', import.meta.url));
}

/** Names of the bundled presets, sorted. */
export function listPresets(dir = presetsDir()): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/** The file of a preset name; a value with a slash or a .yaml / .yml / .json ending is a path. */
export function presetPath(nameOrPath: string, dir = presetsDir(), relativeTo = process.cwd()): string {
  if (/[/\\]/.test(nameOrPath) || /\.(ya?ml|json)$/i.test(nameOrPath)) {
    const file = isAbsolute(nameOrPath) ? nameOrPath : resolve(relativeTo, nameOrPath);
    if (!existsSync(file)) throw new ConfigError(`config file ${nameOrPath} does not exist`);
    return file;
  }
  const file = resolve(dir, `${nameOrPath}.yaml`);
  if (!existsSync(file)) {
    const names = listPresets(dir);
    const guess = closestKey(nameOrPath, names);
    throw new ConfigError(
      `unknown preset "${nameOrPath}"${guess ? ` (did you mean "${guess}"?)` : ''}; presets: ${names.join(', ')}`,
    );
  }
  return file;
}

/** Parses a YAML or JSON file into an object with camelCase keys; errors name the file and line. */
export function readConfigFile(file: string): Raw {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value =
      extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError(
      `${file}: not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${file}: the top level must be a mapping of settings (model:, data:, grpo:, ...)`);
  }
  return normalizeKeys(value, file) as Raw;
}

function isPlainObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Deep merge: objects merge key by key, anything else (scalars, arrays, null) replaces. An object
 * whose `type` differs from the base's (e.g. beta constant -> dynamic) replaces it whole.
 */
export function mergeConfig(base: unknown, overlay: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(overlay)) return overlay;
  if ('type' in overlay && 'type' in base && overlay.type !== base.type) return overlay;
  const out: Raw = { ...base };
  for (const [k, v] of Object.entries(overlay)) out[k] = k in base ? mergeConfig(base[k], v) : v;
  return out;
}

/** A file with its `extends:` chain resolved (a preset name or a path relative to the file). */
export function readWithExtends(file: string, seen: string[] = []): { raw: Raw; sources: string[] } {
  if (seen.includes(file))
    throw new ConfigError(`config files extend each other in a loop: ${[...seen, file].join(' -> ')}`);
  const raw = readConfigFile(file);
  const parent = raw.extends;
  delete raw.extends;
  if (parent === undefined) return { raw, sources: [file] };
  if (typeof parent !== 'string')
    throw new ConfigError(`${file}: "extends" must be a preset name or a file path`);
  const base = readWithExtends(presetPath(parent, presetsDir(), dirname(file)), [...seen, file]);
  return { raw: mergeConfig(base.raw, raw) as Raw, sources: [...base.sources, file] };
}

/** Applies one `key.path=value` override (value parsed as YAML: numbers, booleans, lists, maps). */
export function applySet(raw: Raw, assignment: string, flag = '--set'): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0)
    throw new ConfigError(`${flag} ${assignment}: expected key.path=value, e.g. grpo.numGenerations=8`);
  const path = assignment.slice(0, eq).trim().split('.').map(toCamelCase);
  if (path.some((p) => p === ''))
    throw new ConfigError(`${flag} ${assignment}: empty key in "${assignment.slice(0, eq)}"`);
  const text = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = text === '' ? '' : parseYaml(text);
  } catch {
    value = text;
  }
  value = normalizeKeys(value, `${flag} ${assignment}`, path);
  let node: Raw = raw;
  for (let i = 0; i < path.length - 1; i++) {
    const next = node[path[i]];
    if (next === undefined || next === null || next === false || next === true) node[path[i]] = {};
    else if (!isPlainObject(next)) {
      throw new ConfigError(
        `${flag} ${assignment}: ${path.slice(0, i + 1).join('.')} is ${JSON.stringify(next)}, not a section`,
      );
    }
    node = node[path[i]] as Raw;
  }
  const last = path[path.length - 1];
  node[last] = mergeConfig(node[last], value);
}

export interface ConfigFlags {
  /** Sets maxSteps of every phase in the config. */
  maxSteps?: number;
  seed?: number;
  outputDir?: string;
}

export interface LoadConfigOptions {
  /** A YAML / JSON file. */
  file?: string;
  /** A preset name (or path); with `file`, the file is applied on top of it. Neither: `default`. */
  preset?: string;
  /** `key.path=value` overrides, applied last, in order. */
  set?: readonly string[];
  flags?: ConfigFlags;
}

export interface LoadedConfig {
  config: RunConfig;
  /** The layers, in order (files, flags, --set). */
  sources: string[];
}

/** Builds the raw (unvalidated, camelCase) config from its layers. */
export function loadRawConfig(options: LoadConfigOptions = {}): { raw: Raw; sources: string[] } {
  let raw: Raw = {};
  const sources: string[] = [];
  const preset = options.preset ?? (options.file === undefined ? 'default' : undefined);
  if (preset !== undefined) {
    const r = readWithExtends(presetPath(preset));
    raw = r.raw;
    sources.push(...r.sources);
  }
  if (options.file !== undefined) {
    const file = resolve(options.file);
    if (!existsSync(file)) throw new ConfigError(`config file ${options.file} does not exist`);
    const r = readWithExtends(file);
    raw = mergeConfig(raw, r.raw) as Raw;
    sources.push(...r.sources.filter((s) => !sources.includes(s)));
  }
  const flags = options.flags ?? {};
  if (flags.maxSteps !== undefined) {
    const phases = ['sft', 'grpo'].filter((p) => isPlainObject(raw[p]));
    for (const p of phases) applySet(raw, `${p}.maxSteps=${flags.maxSteps}`, '--max-steps');
    sources.push(`--max-steps ${flags.maxSteps}`);
  }
  if (flags.seed !== undefined) {
    applySet(raw, `seed=${flags.seed}`, '--seed');
    sources.push(`--seed ${flags.seed}`);
  }
  if (flags.outputDir !== undefined) {
    raw.output = mergeConfig(raw.output ?? {}, { dir: flags.outputDir });
    sources.push(`--output-dir ${flags.outputDir}`);
  }
  for (const s of options.set ?? []) {
    applySet(raw, s);
    sources.push(`--set ${s}`);
  }
  return { raw, sources };
}

/** Loads, merges and validates a run config. Throws a ConfigError listing every problem. */
export function loadRunConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const { raw, sources } = loadRawConfig(options);
  return { config: parseRunConfig(raw, sources.join(' + ') || 'defaults'), sources };
}

/** Validates a raw config; `where` names its sources in the error. */
export function parseRunConfig(raw: unknown, where = 'config'): RunConfig {
  const parsed = RunConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`invalid config (${where}):\n${formatZodError(parsed.error)}`);
  const problems = checkRunConfig(parsed.data);
  if (problems.length > 0) {
    throw new ConfigError(
      `invalid config (${where}):\n${problems.map((p) => `✖ ${p.message}\n  → at ${p.path}`).join('\n')}`,
    );
  }
  return parsed.data;
}

/** Known keys per config section, for "did you mean" hints. */
const SECTIONS: Record<string, readonly string[]> = {
  '': Object.keys(RunConfigSchema.shape),
  model: Object.keys(ModelSchema.shape),
  'model.tiny': Object.keys(TinyModelSchema.shape),
  data: Object.keys(DataSchema.shape),
  'data.synthetic': Object.keys(SyntheticSchema.shape),
  'data.prompt': ['name', 'question', 'system', 'imagePosition'],
  'data.sftPrompt': ['name', 'question', 'system', 'imagePosition'],
  'eval.prompt': ['name', 'question', 'system', 'imagePosition'],
  sft: Object.keys(SftSchema.shape),
  grpo: Object.keys(GrpoSchema.shape),
  'grpo.beta': ['type', 'beta', 'betaMin', 'betaMax', 'exploreFraction', 'initBeta', 'targetKl', 'horizon'],
  'grpo.reward': Object.keys(RewardSchema.shape),
  eval: Object.keys(EvalSchema.shape),
  output: Object.keys(OutputSchema.shape),
};

type Issue = ZodError['issues'][number];

/** The issue is "this branch expects another kind of value" (so it is not the branch the user meant). */
function isKindMismatch(branch: Issue[]): boolean {
  return (
    branch.length === 1 &&
    branch[0].path.length === 0 &&
    ['invalid_type', 'invalid_value'].includes(branch[0].code)
  );
}

/**
 * Replaces each union failure ("Invalid input") by the issues of the branch the value was meant
 * for (an object for the template form, ...), or by what each branch expected.
 */
function expandUnions(issues: readonly Issue[], prefix: PropertyKey[] = []): Issue[] {
  const out: Issue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const meant = issue.errors.filter((b) => !isKindMismatch(b));
      if (meant.length === 1) {
        out.push(...expandUnions(meant[0], path));
        continue;
      }
      const expected = issue.errors.map((b) => b.map((i) => i.message).join(', ')).join('; or ');
      out.push({ ...issue, path, message: expected } as Issue);
      continue;
    }
    out.push({ ...issue, path } as Issue);
  }
  return out;
}

/** z.prettifyError, with union failures made specific and hints on unrecognized keys. */
export function formatZodError(error: ZodError): string {
  const issues = expandUnions(error.issues).map((issue) => {
    if (issue.code !== 'unrecognized_keys') return issue;
    const section = issue.path.filter((p) => typeof p === 'string').join('.');
    const known = SECTIONS[section] ?? [];
    const message = issue.keys
      .map((key) => {
        const hint = KEY_HINTS[key];
        if (hint && !known.includes(key)) return `Unrecognized key "${key}": ${hint}`;
        const guess = closestKey(key, known);
        return `Unrecognized key "${key}"${guess ? ` (did you mean "${guess}"?)` : ''}`;
      })
      .join('; ');
    return { ...issue, message };
  });
  return z.prettifyError(new z.ZodError(issues));
}
