// Derives a second valid fixture set from a fixture folder by transformations that keep every
// reference number valid, to prove the suites read their constants from the set in use (issue 16):
// - the case files of qwen2vl-tiny and grpo and the image-processor cases get other names;
// - the token ids are permuted: one permutation of the tiny vocabulary is applied to every id
//   (input ids, labels, generated ids, sequences, completion ids, config.json / special_tokens.json),
//   to the rows of the embedding (weights, gradients, updated weights) and to the last axis of the
//   logits. Relabelling the vocabulary leaves the model's math unchanged (the embedding lookup and
//   the tied LM head follow the rows), so every loss, activation and position stays as it is. The
//   grpo cases (their own vocabularies of 1000 / 32000) get their own permutation of the logits'
//   last axis, the completion ids and eos_token_id.
// The permutation keeps special_tokens.json's format (contiguous text and unused id ranges): the
// special tokens move to the front (shuffled among themselves), then the unused ids, then the text
// ids, shuffled.
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from './finite-difference.js';
import { type FixtureTensor, loadFixture } from './fixtures.js';

const ELEMENT_BYTES: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, U8: 1 };

/** Writes tensors as the fixture README lays them out: 8-byte types first, then 4-, 2-, 1-byte, each group by name. */
export function writeFixtureSafetensors(
  path: string,
  tensors: Map<string, FixtureTensor>,
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const names = [...tensors.keys()].sort((a, b) => {
    const d = ELEMENT_BYTES[tensors.get(b)!.dtype] - ELEMENT_BYTES[tensors.get(a)!.dtype];
    return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const out = Buffer.alloc(8 + Buffer.byteLength(json) + offset);
  out.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  out.write(json, 8, 'utf8');
  let at = 8 + Buffer.byteLength(json);
  for (const name of names) {
    const { data } = tensors.get(name)!;
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, at);
    at += data.byteLength;
  }
  writeFileSync(path, out);
}

function shuffle<T>(items: T[], rand: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** perm[old] = new: specials first (shuffled), then the unused ids, then the text ids (shuffled). */
function tinyPermutation(
  special: Record<string, number>,
  text: number[],
  unused: number[],
  rand: () => number,
) {
  // Shuffle the ids in ascending order (not the names' order): with the names' order, deriving
  // again from a derived set with the same seed would undo the specials' shuffle.
  const specials = Object.values(special).sort((x, y) => x - y);
  const order = [...shuffle(specials, rand), ...unused, ...shuffle(text, rand)];
  const perm = new Int32Array(order.length);
  order.forEach((old, fresh) => {
    perm[old] = fresh;
  });
  return perm;
}

function mapIds(t: FixtureTensor, perm: Int32Array): FixtureTensor {
  const mapOne = (v: number) => (v === -100 ? -100 : perm[v]); // -100: the ignored label
  if (t.data instanceof BigInt64Array) {
    return { ...t, data: BigInt64Array.from(t.data, (v) => BigInt(mapOne(Number(v)))) };
  }
  throw new Error(`ids stored as ${t.dtype}, expected I64`);
}

/** Moves index old of `axis`-sized blocks (the last axis when inner = 1, rows otherwise) to perm[old]. */
function permuteAxis(t: FixtureTensor, perm: Int32Array, lastAxis: boolean): FixtureTensor {
  const v = perm.length;
  const inner = lastAxis ? 1 : t.data.length / t.shape[0];
  const outer = lastAxis ? t.data.length / v : 1;
  if ((lastAxis ? t.shape.at(-1) : t.shape[0]) !== v) {
    throw new Error(`axis of size ${lastAxis ? t.shape.at(-1) : t.shape[0]}, expected the vocabulary ${v}`);
  }
  const Ctor = t.data.constructor as new (n: number) => typeof t.data;
  const out = new Ctor(t.data.length);
  for (let o = 0; o < outer; o++)
    for (let old = 0; old < v; old++)
      for (let i = 0; i < inner; i++)
        (out as Float64Array)[(o * v + perm[old]) * inner + i] = (t.data as Float64Array)[
          (o * v + old) * inner + i
        ];
  return { ...t, data: out };
}

const ID_TENSORS = new Set(['input_ids', 'labels', 'generated_ids', 'sequences', 'completion_ids']);
const LOGIT_TENSORS = /^(logits|step_logits|grad_logits\..*)$/;
const EMBED_ROWS = /(^|\.)model\.embed_tokens\.weight$/;

function permuteFile(src: string, dst: string, perm: Int32Array) {
  const tensors = loadFixture(src);
  const out = new Map<string, FixtureTensor>();
  for (const [name, t] of tensors) {
    if (ID_TENSORS.has(name)) out.set(name, mapIds(t, perm));
    else if (name === 'eos_token_id') out.set(name, mapIds(t, perm));
    else if (LOGIT_TENSORS.test(name)) out.set(name, permuteAxis(t, perm, true));
    else if (EMBED_ROWS.test(name)) out.set(name, permuteAxis(t, perm, false));
    else out.set(name, t);
  }
  writeFixtureSafetensors(dst, out, { format: 'pt', note: 'derived: token ids permuted' });
}

function permuteModelArea(src: string, dst: string, perm: Int32Array, rename: (f: string) => string) {
  mkdirSync(dst, { recursive: true });
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  for (const key of Object.keys(config).filter((k) => k.endsWith('token_id'))) {
    config[key] = perm[config[key]];
  }
  writeFileSync(join(dst, 'config.json'), JSON.stringify(config, null, 2));
  const special = JSON.parse(readFileSync(join(src, 'special_tokens.json'), 'utf8'));
  const [lo, hi] = special.text_token_ids as [number, number];
  const [ulo, uhi] = special.unused_ids as [number, number];
  const nSpecial = Object.keys(special.special_tokens).length;
  for (const k of Object.keys(special.special_tokens))
    special.special_tokens[k] = perm[special.special_tokens[k]];
  special.pad_token_id_used_for_padding = perm[special.pad_token_id_used_for_padding];
  special.unused_ids = [nSpecial, nSpecial + uhi - ulo];
  special.text_token_ids = [nSpecial + uhi - ulo + 1, nSpecial + uhi - ulo + 1 + hi - lo];
  special.note = 'derived set: specials first, then the unused ids, then the text ids (permuted)';
  writeFileSync(join(dst, 'special_tokens.json'), JSON.stringify(special, null, 2));
  for (const f of readdirSync(src)) {
    if (f.endsWith('.json')) continue;
    if (f.endsWith('.safetensors')) permuteFile(join(src, f), join(dst, rename(f)), perm);
    else copyFileSync(join(src, f), join(dst, rename(f)));
  }
}

function caseRenamer(src: string, prefix: string) {
  const cases = readdirSync(src)
    .filter((f) => f.startsWith('case-') && f.endsWith('.safetensors'))
    .sort();
  // Reversed, so that the sorted order of the new names differs from the old one.
  const names = new Map(
    cases.reverse().map((f, i) => [f, `case-${prefix}${String.fromCharCode(97 + i)}.safetensors`]),
  );
  return (f: string) => names.get(f) ?? f;
}

export interface DeriveOptions {
  seed?: number;
  /** Areas to derive (default: all of them); others are not written. */
  areas?: string[];
}

/** Writes the derived set of `src` into `dst` (see the top of this file). */
export function deriveFixtureSet(src: string, dst: string, options: DeriveOptions = {}): void {
  const rand = seededRandom(options.seed ?? 16);
  const want = (area: string) => !options.areas || options.areas.includes(area);
  mkdirSync(dst, { recursive: true });
  // One permutation for the tiny model's vocabulary (qwen2vl-tiny and grpo-step share it).
  const special = JSON.parse(readFileSync(join(src, 'qwen2vl-tiny', 'special_tokens.json'), 'utf8'));
  const range = ([a, b]: [number, number]) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
  const perm = tinyPermutation(
    special.special_tokens,
    range(special.text_token_ids),
    range(special.unused_ids),
    rand,
  );
  if (want('qwen2vl-tiny'))
    permuteModelArea(
      join(src, 'qwen2vl-tiny'),
      join(dst, 'qwen2vl-tiny'),
      perm,
      caseRenamer(join(src, 'qwen2vl-tiny'), ''),
    );
  if (want('grpo-step')) permuteModelArea(join(src, 'grpo-step'), join(dst, 'grpo-step'), perm, (f) => f);
  if (want('grpo')) {
    const from = join(src, 'grpo');
    const to = join(dst, 'grpo');
    mkdirSync(to, { recursive: true });
    const rename = caseRenamer(from, 'rl-');
    for (const f of readdirSync(from)) {
      if (!f.endsWith('.safetensors')) {
        copyFileSync(join(from, f), join(to, f));
        continue;
      }
      const v = loadFixture(join(from, f)).get('logits')!.shape.at(-1)!;
      const p = Int32Array.from(shuffle(range([0, v - 1]), rand));
      permuteFile(join(from, f), join(to, rename(f)), p);
    }
  }
  if (want('image-processor')) {
    const from = join(src, 'image-processor');
    const to = join(dst, 'image-processor');
    mkdirSync(to, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(from, 'manifest.json'), 'utf8'));
    manifest.cases = manifest.cases.reverse().map((c: Record<string, string>, i: number) => {
      const name = `picture-${i}`;
      copyFileSync(join(from, c.png), join(to, `${name}.png`));
      copyFileSync(join(from, c.tensors), join(to, `${name}.safetensors`));
      return { ...c, name, png: `${name}.png`, tensors: `${name}.safetensors` };
    });
    writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 2));
  }
  // Areas without ids or case names to change: copied as they are.
  for (const area of readdirSync(src)) {
    if (['qwen2vl-tiny', 'grpo-step', 'grpo', 'image-processor'].includes(area) || !want(area)) continue;
    cpSync(join(src, area), join(dst, area), { recursive: true });
  }
}
