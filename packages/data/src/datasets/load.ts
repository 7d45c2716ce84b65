// loadDataset: a JSONL / parquet file or a dataset folder -> R1-V samples, optionally subsampled.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import type { R1VSample } from '../schema.js';
import type { BadRow } from './errors.js';
import { readJsonl } from './jsonl.js';
import { readParquet } from './parquet.js';
import { subsample } from './random.js';
import type { ReadOptions } from './read.js';

export interface LoadDatasetOptions extends ReadOptions {
  /** Split to look for in a folder: `train.jsonl`, `train-00000-of-00001.parquet`, `data/train-*.parquet`, `train/*` (default `train`). */
  split?: string;
  /** Keep this many samples (few-shot: the paper trains counting on 100). */
  limit?: number;
  /** With `limit`: pick the samples with this seed (see `subsample`); without: the first `limit`. */
  seed?: number;
}

export interface Dataset {
  samples: R1VSample[];
  /** The folder image paths are relative to. */
  root: string;
  /** The files read, in order. */
  files: string[];
  /** Rows left out under `onBadRow: 'skip'`; `badRows.length` is the count. */
  badRows: BadRow[];
}

const EXTENSIONS = new Set(['.jsonl', '.parquet']);

function dataFilesIn(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir)
    .filter((name) => EXTENSIONS.has(extname(name)))
    .sort()
    .map((name) => join(dir, name));
}

/** The files of `split` in a dataset folder (HF layouts), sorted by name. */
export function findSplitFiles(dir: string, split = 'train'): string[] {
  const prefix = new RegExp(`^${split.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([-_.]|$)`);
  const named = (files: string[]) => files.filter((f) => prefix.test(f.slice(dirname(f).length + 1)));
  for (const candidates of [
    named(dataFilesIn(dir)),
    named(dataFilesIn(join(dir, 'data'))),
    dataFilesIn(join(dir, split)),
    dataFilesIn(join(dir, 'data', split)),
  ]) {
    if (candidates.length > 0) return candidates;
  }
  throw new Error(
    `${dir}: no ${split} split (looked for ${split}*.jsonl / ${split}*.parquet in the folder and in data/, and for files in ${split}/ and data/${split}/)`,
  );
}

/**
 * Reads an R1-V dataset: one `.jsonl` / `.parquet` file, or a folder holding the split's files.
 * Image paths are confined to the folder (or `imageRoot`).
 */
export async function loadDataset(path: string, options: LoadDatasetOptions = {}): Promise<Dataset> {
  if (!existsSync(path)) throw new Error(`dataset ${path} does not exist`);
  const isDir = statSync(path).isDirectory();
  const files = isDir ? findSplitFiles(path, options.split) : [path];
  const root = resolve(options.imageRoot ?? (isDir ? path : dirname(path)));
  const samples: R1VSample[] = [];
  const badRows: BadRow[] = [];
  for (const file of files) {
    const ext = extname(file);
    if (!EXTENSIONS.has(ext))
      throw new Error(`${file}: unknown dataset format ${ext || '(no extension)'}; use .jsonl or .parquet`);
    const part = await (ext === '.jsonl' ? readJsonl : readParquet)(file, { ...options, imageRoot: root });
    for (const s of part.samples) samples.push(s);
    for (const b of part.badRows) badRows.push(b);
  }
  const kept = options.limit === undefined ? samples : subsample(samples, options.limit, options.seed);
  return { samples: kept, root, files, badRows };
}
