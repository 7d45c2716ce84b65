// Writes samples to disk in the two layouts the dataset readers take, so that synthetic and real data
// go through the same code: `<split>.jsonl` + `images/`, or a Hugging Face style
// `data/<split>-00000-of-00001.parquet` whose `image` column is the `datasets.Image` struct
// `{bytes, path}`.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { sniffImageFormat } from '../image/decode.js';
import type { R1VSample } from '../schema.js';

export interface WriteTaskDatasetOptions {
  format: 'jsonl' | 'parquet';
  /** Split name used in the file names (default `train`). */
  split?: string;
}

export interface WrittenTaskDataset {
  /** The JSONL or parquet file. */
  dataFile: string;
  /** Image files written next to a JSONL file (none for parquet: the bytes are inside). */
  imageFiles: string[];
  count: number;
}

const CORE = ['image', 'problem', 'solution', 'thinking'] as const;
const EXTENSION = { png: 'png', jpeg: 'jpg', webp: 'webp' } as const;

function imageBytesOf(sample: R1VSample, i: number): Uint8Array {
  if (!(sample.image instanceof Uint8Array)) {
    throw new Error(
      `writeTaskDataset: sample ${i} has an image path, not image bytes; only in-memory images can be written`,
    );
  }
  return sample.image;
}

function imageName(split: string, i: number, bytes: Uint8Array): string {
  const format = sniffImageFormat(bytes);
  if (!format) throw new Error(`writeTaskDataset: sample ${i}: image bytes are not a PNG/JPEG/WebP image`);
  return `${split}-${String(i).padStart(6, '0')}.${EXTENSION[format]}`;
}

/** Keys beyond image/problem/solution/thinking, in first-seen order. */
function extraKeys(samples: readonly R1VSample[]): string[] {
  const keys = new Set<string>();
  for (const s of samples)
    for (const k of Object.keys(s)) if (!(CORE as readonly string[]).includes(k)) keys.add(k);
  return [...keys];
}

function checkExtra(value: unknown, key: string, i: number): void {
  if (value instanceof Uint8Array || typeof value === 'function' || typeof value === 'bigint') {
    throw new Error(`writeTaskDataset: sample ${i} field "${key}" cannot be written as JSON`);
  }
}

async function writeJsonl(
  samples: readonly R1VSample[],
  dir: string,
  split: string,
): Promise<WrittenTaskDataset> {
  await mkdir(join(dir, 'images'), { recursive: true });
  const lines: string[] = [];
  const imageFiles: string[] = [];
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    const bytes = imageBytesOf(s, i);
    const relative = `images/${imageName(split, i, bytes)}`;
    const file = join(dir, relative);
    await writeFile(file, bytes);
    imageFiles.push(file);
    const row: Record<string, unknown> = { image: relative, problem: s.problem, solution: s.solution };
    if (s.thinking !== undefined) row.thinking = s.thinking;
    for (const [k, v] of Object.entries(s)) {
      if ((CORE as readonly string[]).includes(k)) continue;
      checkExtra(v, k, i);
      row[k] = v;
    }
    lines.push(JSON.stringify(row));
  }
  const dataFile = join(dir, `${split}.jsonl`);
  await writeFile(dataFile, lines.length ? `${lines.join('\n')}\n` : '');
  return { dataFile, imageFiles, count: samples.length };
}

type ColumnKind = 'string' | 'double' | 'boolean' | 'json';

function columnKind(values: unknown[]): ColumnKind {
  const present = values.filter((v) => v !== undefined && v !== null);
  if (present.every((v) => typeof v === 'string')) return 'string';
  if (present.every((v) => typeof v === 'number')) return 'double';
  if (present.every((v) => typeof v === 'boolean')) return 'boolean';
  return 'json';
}

const PARQUET_TYPE: Record<
  ColumnKind,
  { type: 'BYTE_ARRAY' | 'DOUBLE' | 'BOOLEAN'; converted_type?: 'UTF8' }
> = {
  string: { type: 'BYTE_ARRAY', converted_type: 'UTF8' },
  json: { type: 'BYTE_ARRAY', converted_type: 'UTF8' },
  double: { type: 'DOUBLE' },
  boolean: { type: 'BOOLEAN' },
};
const HF_DTYPE: Record<ColumnKind, string> = {
  string: 'string',
  json: 'string',
  double: 'float64',
  boolean: 'bool',
};

async function writeParquet(
  samples: readonly R1VSample[],
  dir: string,
  split: string,
): Promise<WrittenTaskDataset> {
  await mkdir(join(dir, 'data'), { recursive: true });
  const images = samples.map((s, i) => {
    const bytes = imageBytesOf(s, i);
    return { bytes, path: imageName(split, i, bytes) };
  });
  const columns: { name: string; data: unknown[]; kind: ColumnKind }[] = [
    { name: 'problem', data: samples.map((s) => s.problem), kind: 'string' },
    { name: 'solution', data: samples.map((s) => s.solution), kind: 'string' },
  ];
  if (samples.some((s) => s.thinking !== undefined)) {
    columns.push({ name: 'thinking', data: samples.map((s) => s.thinking ?? null), kind: 'string' });
  }
  for (const key of extraKeys(samples)) {
    const values = samples.map((s, i) => {
      checkExtra(s[key], key, i);
      return s[key];
    });
    const kind = columnKind(values);
    // Object-valued fields (scene, diagram, query) are stored as JSON text.
    const data = values.map((v) =>
      v === undefined || v === null ? null : kind === 'json' ? JSON.stringify(v) : v,
    );
    columns.push({ name: key, data, kind });
  }
  const schema = [
    { name: 'root', num_children: 1 + columns.length },
    { name: 'image', repetition_type: 'OPTIONAL' as const, num_children: 2 },
    { name: 'bytes', type: 'BYTE_ARRAY' as const, repetition_type: 'OPTIONAL' as const },
    {
      name: 'path',
      type: 'BYTE_ARRAY' as const,
      converted_type: 'UTF8' as const,
      repetition_type: 'OPTIONAL' as const,
    },
    ...columns.map((c) => ({ name: c.name, ...PARQUET_TYPE[c.kind], repetition_type: 'OPTIONAL' as const })),
  ];
  // The `huggingface` key lets `datasets` restore the Image feature (decoded PIL images on load).
  const features: Record<string, unknown> = { image: { _type: 'Image' } };
  for (const c of columns) features[c.name] = { dtype: HF_DTYPE[c.kind], _type: 'Value' };
  const buffer = parquetWriteBuffer({
    columnData: [{ name: 'image', data: images }, ...columns.map((c) => ({ name: c.name, data: c.data }))],
    schema,
    rowGroupSize: 256,
    kvMetadata: [{ key: 'huggingface', value: JSON.stringify({ info: { features } }) }],
  });
  const dataFile = join(dir, 'data', `${split}-00000-of-00001.parquet`);
  await writeFile(dataFile, new Uint8Array(buffer));
  return { dataFile, imageFiles: [], count: samples.length };
}

/**
 * Writes samples with in-memory images (the synthetic tasks' output) to `dir`:
 * - `jsonl`: `<split>.jsonl`, one row per sample with `image` a path relative to `dir`
 *   (`images/<split>-000000.png`), other fields as they are;
 * - `parquet`: `data/<split>-00000-of-00001.parquet` with `image` as `{bytes, path}` (HF `datasets.Image`),
 *   string / number / boolean fields as columns and object fields as JSON text.
 */
export async function writeTaskDataset(
  samples: readonly R1VSample[],
  dir: string,
  options: WriteTaskDatasetOptions,
): Promise<WrittenTaskDataset> {
  const split = options.split ?? 'train';
  if (!/^[A-Za-z0-9_.-]+$/.test(split))
    throw new Error(`writeTaskDataset: split name ${JSON.stringify(split)} is not a plain file name`);
  if (options.format === 'jsonl') return writeJsonl(samples, dir, split);
  if (options.format === 'parquet') return writeParquet(samples, dir, split);
  throw new Error(
    `writeTaskDataset: format must be 'jsonl' or 'parquet', got ${JSON.stringify(options.format)}`,
  );
}
