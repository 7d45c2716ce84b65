// What a fixture folder holds, read from the folder itself (fixtures/README.md describes the format),
// so that the fixture-driven suites pass on any fixture set of that format, not only on the public
// one: the case files (a listing of case-*.safetensors, picked by the tensors they hold), the
// special-token ids, the tiny model's config.json and the image-processor manifest. Checks about
// the public set's own numbers (a named case, its case count) run only where `isPublicFixtureSet`
// recognises that set by a digest of its listing and json files.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturePath, fixturesDir } from './fixtures.js';

/** The tensors of a fixture safetensors file (name -> dtype and shape), from its header only. */
export function fixtureHeader(relative: string): Map<string, { dtype: string; shape: number[] }> {
  const file = readFileSync(fixturePath(relative));
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[] }
  >;
  const out = new Map<string, { dtype: string; shape: number[] }>();
  for (const [name, info] of Object.entries(header)) {
    if (name !== '__metadata__') out.set(name, { dtype: info.dtype, shape: info.shape });
  }
  return out;
}

export interface CaseFilter {
  /** Tensors (or, ending in '.', a tensor-name prefix such as 'grad.') the case must hold. */
  with?: string[];
  /** Tensors (or prefixes) the case must not hold. */
  without?: string[];
}

/**
 * The case files of a fixture area (`case-*.safetensors` in `<fixtures>/<dir>`), as names without
 * the extension, sorted; with a filter, only those whose header holds / lacks the given tensors
 * (e.g. `{ with: ['generated_ids'] }` for the generation cases). Throws when none matches, so a
 * suite never passes by looping over nothing.
 */
export function fixtureCases(dir: string, filter: CaseFilter = {}): string[] {
  const names = readdirSync(fixturePath(dir))
    .filter((f) => f.startsWith('case-') && f.endsWith('.safetensors'))
    .map((f) => f.slice(0, -'.safetensors'.length))
    .sort();
  const holds = (tensors: Map<string, unknown>, key: string) =>
    key.endsWith('.') ? [...tensors.keys()].some((k) => k.startsWith(key)) : tensors.has(key);
  const picked = names.filter((name) => {
    if (!filter.with && !filter.without) return true;
    const tensors = fixtureHeader(join(dir, `${name}.safetensors`));
    return (
      (filter.with ?? []).every((k) => holds(tensors, k)) &&
      !(filter.without ?? []).some((k) => holds(tensors, k))
    );
  });
  if (picked.length === 0) {
    throw new Error(`no case-*.safetensors in ${join(fixturesDir(), dir)} matches ${JSON.stringify(filter)}`);
  }
  return picked;
}

/** The forward cases (with logits), those that also hold parameter gradients, the generation cases. */
export const FORWARD_CASE_FILTER: CaseFilter = { with: ['logits', 'loss'] };
export const GRADIENT_CASE_FILTER: CaseFilter = { with: ['logits', 'loss', 'grad.'] };
export const GENERATION_CASE_FILTER: CaseFilter = { with: ['generated_ids'] };

export interface SpecialTokens {
  /** Token string -> id (the 14 Qwen2-VL special tokens). */
  ids: Record<string, number>;
  endOfText: number;
  imStart: number;
  imEnd: number;
  visionStart: number;
  visionEnd: number;
  imagePad: number;
  videoPad: number;
  /** The id batches are padded with. */
  pad: number;
  /** Every ordinary text id, ascending. */
  textIds: number[];
  /** Ids of unused embedding rows (never produced by a tokenizer), ascending. */
  unusedIds: number[];
}

const range = ([lo, hi]: [number, number]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

/** special_tokens.json of a model area (qwen2vl-tiny by default; grpo-step holds a copy). */
export function specialTokens(dir = 'qwen2vl-tiny'): SpecialTokens {
  const json = JSON.parse(readFileSync(fixturePath(join(dir, 'special_tokens.json')), 'utf8')) as {
    special_tokens: Record<string, number>;
    text_token_ids: [number, number];
    pad_token_id_used_for_padding: number;
    unused_ids: [number, number];
  };
  const ids = json.special_tokens;
  const id = (token: string) => {
    const v = ids[token];
    if (v === undefined) throw new Error(`${dir}/special_tokens.json has no ${token}`);
    return v;
  };
  return {
    ids,
    endOfText: id('<|endoftext|>'),
    imStart: id('<|im_start|>'),
    imEnd: id('<|im_end|>'),
    visionStart: id('<|vision_start|>'),
    visionEnd: id('<|vision_end|>'),
    imagePad: id('<|image_pad|>'),
    videoPad: id('<|video_pad|>'),
    pad: json.pad_token_id_used_for_padding,
    textIds: range(json.text_token_ids),
    unusedIds: range(json.unused_ids),
  };
}

/** The tiny model's config.json (hub layout) as parsed JSON. */
// biome-ignore lint/suspicious/noExplicitAny: the raw hub JSON, checked by the suites that read it
export function tinyConfig(dir = 'qwen2vl-tiny'): Record<string, any> {
  return JSON.parse(readFileSync(fixturePath(join(dir, 'config.json')), 'utf8'));
}

export interface ImageProcessorCase {
  name: string;
  /** The image file and the tensors file, relative to the fixture folder. */
  image: string;
  tensors: string;
  min_pixels: number;
  max_pixels: number;
  resized_height: number;
  resized_width: number;
  image_grid_thw: number[];
  // biome-ignore lint/suspicious/noExplicitAny: the other manifest fields, as written
  [key: string]: any;
}

export interface ImageProcessorManifest {
  cases: ImageProcessorCase[];
  // biome-ignore lint/suspicious/noExplicitAny: the manifest's other top-level fields, as written
  [key: string]: any;
}

/** The manifest of an image-processor area, with each case's files relative to the fixture folder. */
export function imageProcessorManifest(dir = 'image-processor'): ImageProcessorManifest {
  const json = JSON.parse(readFileSync(fixturePath(join(dir, 'manifest.json')), 'utf8'));
  return {
    ...json,
    // The public manifest names the image `png`, the extra one `file`.
    cases: json.cases.map((c: Record<string, unknown>) => ({
      ...c,
      image: join(dir, (c.png ?? c.file) as string),
      tensors: join(dir, c.tensors as string),
    })),
  };
}

/**
 * A digest of a fixture area: its sorted file names and the bytes of its json files (config,
 * special tokens, manifests, schedules). Renaming a case, changing an id or a manifest entry changes it.
 */
export function fixtureAreaDigest(dir: string): string {
  const root = fixturePath(dir);
  const files = readdirSync(root).sort();
  const hash = createHash('sha256');
  for (const f of files) {
    hash.update(`${f}\n`);
    if (f.endsWith('.json')) hash.update(readFileSync(join(root, f)));
  }
  return hash.digest('hex').slice(0, 16);
}

/** The digests of the public set's areas (fixtures/ in the repository). */
const PUBLIC_DIGESTS: Record<string, string> = {
  'qwen2vl-tiny': '99b93c6ac9ffc1b7',
  grpo: '03ce9458e4447e31',
  'grpo-step': 'ecd47040b1a4d5f5',
  'image-processor': '29b9e51e1741307a',
  'image-processor-extra': 'a6920e9705449f45',
};

/**
 * Whether `<fixtures>/<dir>` is the public set's area of that name: checks about the public set's
 * particular numbers run only there (and say so in their names when they skip elsewhere).
 */
export function isPublicFixtureSet(dir: string): boolean {
  const want = PUBLIC_DIGESTS[dir];
  if (want === undefined) throw new Error(`no public digest recorded for fixture area ${dir}`);
  return fixtureAreaDigest(dir) === want;
}

/** Suffix for the names of tests that run only on the public fixture set. */
export const PUBLIC_SET_ONLY = '[public fixture set only; skipped on other sets]';
