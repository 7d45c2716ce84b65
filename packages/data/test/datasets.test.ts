import { existsSync, mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import {
  type DatasetRowError,
  findSplitFiles,
  loadDataset,
  loadSampleImage,
  permutation,
  readJsonl,
  readParquet,
  resolveInside,
  sampleSource,
  shuffle,
  subsample,
  trainTestSplit,
} from '../src/datasets/index.js';
import type { RgbImage } from '../src/schema.js';

/** A PNG whose pixel (x, y) is (seed, x, y), so decoded images can be told apart. */
function png(width: number, height: number, seed: number): Uint8Array {
  const image = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = 4 * (y * width + x);
      image.data[o] = seed;
      image.data[o + 1] = x;
      image.data[o + 2] = y;
      image.data[o + 3] = 255;
    }
  }
  return new Uint8Array(PNG.sync.write(image));
}

/** Test decoder (pngjs): PNG -> RGB; anything else throws, as an unreadable image would. */
function decodePng(bytes: Uint8Array): RgbImage {
  const { width, height, data } = PNG.sync.read(Buffer.from(bytes));
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) rgb.set(data.subarray(4 * i, 4 * i + 3), 3 * i);
  return { width, height, data: rgb };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'othink-data-'));
}

/** A dataset folder with images/0..n-1.png and a JSONL file of `lines` (strings written verbatim). */
function jsonlDataset(lines: string[], nImages = 4, name = 'train.jsonl'): { dir: string; file: string } {
  const dir = tempDir();
  mkdirSync(join(dir, 'images'));
  for (let i = 0; i < nImages; i++) writeFileSync(join(dir, 'images', `${i}.png`), png(4, 3, i));
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n'));
  return { dir, file };
}

const row = (i: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    image: `images/${i}.png`,
    problem: `How many? ${i}`,
    solution: `<answer> ${i} </answer>`,
    ...extra,
  });

async function rejection(p: Promise<unknown>): Promise<DatasetRowError> {
  try {
    await p;
  } catch (err) {
    return err as DatasetRowError;
  }
  throw new Error('expected a rejection');
}

describe('JSONL datasets', () => {
  it('read samples with paths relative to the dataset folder, optional thinking and extra fields', async () => {
    const { dir, file } = jsonlDataset([
      row(0, { thinking: '<think>0</think>', id: 'a' }),
      '',
      row(1),
      '\r',
      row(2),
    ]);
    const { samples, badRows } = await readJsonl(file);
    expect(badRows).toEqual([]);
    expect(samples).toEqual([
      {
        image: 'images/0.png',
        problem: 'How many? 0',
        solution: '<answer> 0 </answer>',
        thinking: '<think>0</think>',
        id: 'a',
      },
      { image: 'images/1.png', problem: 'How many? 1', solution: '<answer> 1 </answer>' },
      { image: 'images/2.png', problem: 'How many? 2', solution: '<answer> 2 </answer>' },
    ]);
    expect(sampleSource(samples[1])).toEqual({ file, row: 3, kind: 'jsonl', root: dir });
    const image = await loadSampleImage(samples[2], { decoder: decodePng });
    expect([image.width, image.height, ...image.data.subarray(0, 6)]).toEqual([4, 3, 2, 0, 0, 2, 1, 0]);
  });

  it('reads configurable field names; CRLF line ends are fine', async () => {
    const line = (i: number) =>
      JSON.stringify({ img: `images/${i}.png`, question: `Q${i}`, answer: i, cot: 'c' });
    const { file } = jsonlDataset([line(0), line(1)].map((l) => `${l}\r`));
    const { samples } = await readJsonl(file, {
      fields: { image: 'img', problem: 'question', solution: 'answer', thinking: 'cot' },
    });
    expect(samples).toEqual([
      { image: 'images/0.png', problem: 'Q0', solution: '0', thinking: 'c' },
      { image: 'images/1.png', problem: 'Q1', solution: '1', thinking: 'c' },
    ]);
    await expect(readJsonl(file, { fields: { problem: '' } })).rejects.toThrow(
      'fields.problem must be a non-empty string',
    );
  });

  const badLines = () => [
    row(0), // line 1: fine
    JSON.stringify({ image: 'images/1.png', solution: 'x' }), // 2: no problem
    '{"image": "images/2.png", "problem": ', // 3: broken JSON
    row(3, { image: '../outside.png' }), // 4: escapes the folder
    row(3, { image: '/etc/passwd' }), // 5: absolute, elsewhere
    row(3, { image: 'images/missing.png' }), // 6: no such file
    row(3, { problem: 7.5, solution: ['a'] }), // 7: solution of the wrong type (problem 7.5 is accepted as text)
    '[1, 2]', // 8: not an object
    row(3), // 9: fine
  ];

  it('fail fast (default) at the first bad row, naming file, line and field', async () => {
    const { file } = jsonlDataset(badLines());
    const err = await rejection(readJsonl(file));
    expect(err.message).toBe(`${file}:2: field "problem" is missing`);
    expect([err.name, err.file, err.row, err.field]).toEqual(['DatasetRowError', file, 2, 'problem']);
  });

  it('skip and count bad rows under onBadRow: "skip", each with its file:line message', async () => {
    const { dir, file } = jsonlDataset(badLines());
    const { samples, badRows } = await readJsonl(file, { onBadRow: 'skip' });
    expect(samples.map((s) => sampleSource(s)?.row)).toEqual([1, 9]);
    expect(badRows.map((b) => b.row)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    const messages = badRows.map((b) => b.message);
    expect(messages[0]).toBe(`${file}:2: field "problem" is missing`);
    expect(messages[1]).toMatch(new RegExp(`^${file}:3: not valid JSON \\(`));
    expect(messages[2]).toBe(
      `${file}:4: field "image": image path "../outside.png" resolves outside the dataset folder ${dir}`,
    );
    expect(messages[3]).toBe(
      `${file}:5: field "image": image path "/etc/passwd" resolves outside the dataset folder ${dir}`,
    );
    expect(messages[4]).toMatch(
      new RegExp(`^${file}:6: field "image": image "images/missing.png" is unreadable \\(ENOENT`),
    );
    expect(messages[5]).toBe(`${file}:7: field "solution" must be a string, got an array`);
    expect(messages[6]).toBe(`${file}:8: row must be an object, got an array`);
    expect(badRows[0]).toMatchObject({ file, row: 2, kind: 'jsonl', field: 'problem' });
  });

  it('reject a symlink that leads out of the dataset folder', async () => {
    const outside = tempDir();
    writeFileSync(join(outside, 'secret.png'), png(2, 2, 9));
    const { dir, file } = jsonlDataset([row(0, { image: 'images/link.png' })]);
    symlinkSync(join(outside, 'secret.png'), join(dir, 'images', 'link.png'));
    await expect(readJsonl(file)).rejects.toThrow(
      `${file}:1: field "image": image path "images/link.png" is a link to`,
    );
    expect(() => resolveInside(dir, 'images/../images/0.png')).not.toThrow();
    expect(resolveInside(dir, 'images/../images/0.png')).toBe(join(dir, 'images', '0.png'));
    expect(() => resolveInside(dir, 'images/../../x.png')).toThrow('resolves outside the dataset folder');
    expect(() => resolveInside(dir, '')).toThrow('image path is empty');
  });

  it('report oversize and undecodable images as bad rows', async () => {
    const { dir, file } = jsonlDataset([row(0), row(1), row(2), row(3)], 4);
    writeFileSync(join(dir, 'images', '1.png'), 'not a png at all');
    writeFileSync(join(dir, 'images', '3.png'), png(40, 30, 3));
    // A limit between the small files and the 40x30 one.
    const sizes = [0, 1, 2, 3].map((i) => statSync(join(dir, 'images', `${i}.png`)).size);
    const limit = Math.max(...sizes.slice(0, 3));
    expect(sizes[3]).toBeGreaterThan(limit);
    const small = await readJsonl(file, { onBadRow: 'skip', maxImageBytes: limit });
    expect(small.badRows.map((b) => b.message)).toEqual([
      `${file}:4: field "image": image "images/3.png" has ${sizes[3]} bytes, over the limit of ${limit}`,
    ]);
    const decoded = await readJsonl(file, {
      onBadRow: 'skip',
      validateImages: true,
      decoder: decodePng,
      maxImagePixels: 100,
    });
    expect(decoded.samples.map((s) => s.image)).toEqual(['images/0.png', 'images/2.png']);
    expect(decoded.badRows.map((b) => b.message)).toEqual([
      expect.stringMatching(new RegExp(`^${file}:2: field "image": cannot decode the image: `)),
      `${file}:4: field "image": image is 40x30 = 1200 pixels, over the limit of 100`,
    ]);
    await expect(readJsonl(file, { validateImages: true, decoder: decodePng })).rejects.toThrow(
      `${file}:2: field "image": cannot decode the image: `,
    );
    // Decoding later reports the same problems with the row's location.
    const lazy = await readJsonl(file);
    await expect(loadSampleImage(lazy.samples[1], { decoder: decodePng })).rejects.toThrow(
      `${file}:2: field "image": cannot decode the image: `,
    );
    await expect(
      loadSampleImage(lazy.samples[3], { decoder: decodePng, maxImagePixels: 100 }),
    ).rejects.toThrow(`${file}:4: field "image": image is 40x30 = 1200 pixels, over the limit of 100`);
  });

  it('checks the policy name and the file', async () => {
    const { file } = jsonlDataset([row(0)]);
    await expect(readJsonl(file, { onBadRow: 'ignore' as never })).rejects.toThrow(
      'onBadRow must be "fail" or "skip", got "ignore"',
    );
    await expect(readJsonl(join(file, '..', 'nope.jsonl'))).rejects.toThrow('cannot read');
  });
});

/** An HF-style parquet file: `image` as struct<bytes: binary, path: string>, text columns as UTF8 strings. */
function writeParquet(
  path: string,
  rows: {
    image: { bytes: Uint8Array | null; path: string | null } | null;
    problem: string | null;
    solution: string;
  }[],
  rowGroupSize = 1000,
): void {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'image', data: rows.map((r) => r.image) },
      { name: 'problem', data: rows.map((r) => r.problem) },
      { name: 'solution', data: rows.map((r) => r.solution) },
    ],
    schema: [
      { name: 'schema', num_children: 3 },
      { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'problem', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      // Unannotated binary text column, as some writers produce: must still read as text.
      { name: 'solution', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
    ],
    rowGroupSize,
  });
  writeFileSync(path, new Uint8Array(buffer));
}

describe('parquet datasets (HF image struct column)', () => {
  it('read image bytes exactly, path-only structs, several row groups', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'side.png'), png(3, 3, 7));
    const images = [png(5, 4, 1), png(6, 2, 2), png(2, 2, 3)];
    const file = join(dir, 'train.parquet');
    writeParquet(
      file,
      [
        { image: { bytes: images[0], path: 'a.png' }, problem: 'Q0', solution: '<answer> 1 </answer>' },
        { image: { bytes: images[1], path: null }, problem: 'Q1', solution: '°' },
        { image: { bytes: null, path: 'side.png' }, problem: 'Q2', solution: 'S2' },
        { image: { bytes: images[2], path: 'c.png' }, problem: 'Q3', solution: 'S3' },
      ],
      2,
    );
    const { samples, badRows } = await readParquet(file);
    expect(badRows).toEqual([]);
    expect(samples.map((s) => [s.problem, s.solution])).toEqual([
      ['Q0', '<answer> 1 </answer>'],
      ['Q1', '°'],
      ['Q2', 'S2'],
      ['Q3', 'S3'],
    ]);
    expect(samples[0].image).toEqual(images[0]);
    expect(samples[1].image).toEqual(images[1]);
    expect(samples[2].image).toBe('side.png');
    expect(samples[3].image).toEqual(images[2]);
    expect(sampleSource(samples[3])).toEqual({ file, row: 3, kind: 'parquet', root: dir });
    const decoded = await loadSampleImage(samples[1], { decoder: decodePng });
    expect([decoded.width, decoded.height, decoded.data[0]]).toEqual([6, 2, 2]);
    const fromPath = await loadSampleImage(samples[2], { decoder: decodePng });
    expect([fromPath.width, fromPath.height, fromPath.data[0]]).toEqual([3, 3, 7]);
  });

  it('report bad rows by 0-based row index under both policies', async () => {
    const dir = tempDir();
    const file = join(dir, 'train-00000-of-00001.parquet');
    writeParquet(
      file,
      [
        { image: { bytes: png(2, 2, 0), path: null }, problem: 'Q0', solution: 'S0' },
        { image: { bytes: png(2, 2, 1), path: null }, problem: null, solution: 'S1' },
        { image: null, problem: 'Q2', solution: 'S2' },
        { image: { bytes: null, path: '../../etc/passwd' }, problem: 'Q3', solution: 'S3' },
        { image: { bytes: new Uint8Array(0), path: null }, problem: 'Q4', solution: 'S4' },
        { image: { bytes: png(2, 2, 5), path: null }, problem: 'Q5', solution: 'S5' },
      ],
      4,
    );
    await expect(readParquet(file)).rejects.toThrow(`${file} row 1: field "problem" is missing`);
    const { samples, badRows } = await readParquet(file, { onBadRow: 'skip' });
    expect(samples.map((s) => s.problem)).toEqual(['Q0', 'Q5']);
    expect(badRows.map((b) => b.message)).toEqual([
      `${file} row 1: field "problem" is missing`,
      `${file} row 2: field "image" is missing`,
      `${file} row 3: field "image": image path "../../etc/passwd" resolves outside the dataset folder ${dir}`,
      `${file} row 4: field "image": image bytes are empty`,
    ]);
  });

  it('a missing column fails the whole file and says how to map it', async () => {
    const dir = tempDir();
    const file = join(dir, 'train.parquet');
    writeParquet(file, [{ image: { bytes: png(2, 2, 0), path: null }, problem: 'Q', solution: 'S' }]);
    await expect(readParquet(file, { fields: { problem: 'question' }, onBadRow: 'skip' })).rejects.toThrow(
      `${file}: column "question" is missing (columns: image, problem, solution); set fields.problem to the column that holds the problem`,
    );
    writeFileSync(join(dir, 'broken.parquet'), 'PAR1 nope');
    await expect(readParquet(join(dir, 'broken.parquet'))).rejects.toThrow(
      `cannot read ${join(dir, 'broken.parquet')} as parquet`,
    );
  });
});

describe('loadDataset', () => {
  function hfFolder(): string {
    const dir = tempDir();
    mkdirSync(join(dir, 'data'));
    const rows = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        image: { bytes: png(2, 2, i), path: null },
        problem: `${prefix}${i}`,
        solution: `<answer> ${i} </answer>`,
      }));
    writeParquet(join(dir, 'data', 'train-00000-of-00002.parquet'), rows('a', 30));
    writeParquet(join(dir, 'data', 'train-00001-of-00002.parquet'), rows('b', 20));
    writeParquet(join(dir, 'data', 'test-00000-of-00001.parquet'), rows('t', 5));
    return dir;
  }

  it('finds the split files of an HF dataset folder, in order', async () => {
    const dir = hfFolder();
    expect(findSplitFiles(dir)).toEqual([
      join(dir, 'data', 'train-00000-of-00002.parquet'),
      join(dir, 'data', 'train-00001-of-00002.parquet'),
    ]);
    const train = await loadDataset(dir);
    expect(train.samples.length).toBe(50);
    expect(train.samples[0].problem).toBe('a0');
    expect(train.samples[49].problem).toBe('b19');
    const test = await loadDataset(dir, { split: 'test' });
    expect(test.samples.map((s) => s.problem)).toEqual(['t0', 't1', 't2', 't3', 't4']);
    expect(() => findSplitFiles(dir, 'validation')).toThrow(`${dir}: no validation split`);
  });

  it('subsamples few-shot sets deterministically: same seed same rows, smaller sets are prefixes', async () => {
    const dir = hfFolder();
    const a = await loadDataset(dir, { limit: 10, seed: 42 });
    const b = await loadDataset(dir, { limit: 10, seed: 42 });
    const c = await loadDataset(dir, { limit: 12, seed: 42 });
    const d = await loadDataset(dir, { limit: 10, seed: 7 });
    const names = (x: { samples: { problem: string }[] }) => x.samples.map((s) => s.problem);
    expect(names(a)).toEqual(names(b));
    expect(names(c).slice(0, 10)).toEqual(names(a));
    expect(names(d)).not.toEqual(names(a));
    expect(new Set(names(a)).size).toBe(10);
    expect(names(await loadDataset(dir, { limit: 3 }))).toEqual(['a0', 'a1', 'a2']);
    await expect(loadDataset(dir, { limit: 51 })).rejects.toThrow(
      'subsample: asked for 51 samples but there are only 50',
    );
  });

  it('reads a single JSONL file and a JSONL split in a folder', async () => {
    const { dir, file } = jsonlDataset([row(0), row(1), row(2)]);
    expect((await loadDataset(file)).samples.length).toBe(3);
    const loaded = await loadDataset(dir, { split: 'train' });
    expect(loaded.files).toEqual([file]);
    expect(loaded.root).toBe(dir);
    await expect(loadDataset(join(dir, 'nope'))).rejects.toThrow(
      `dataset ${join(dir, 'nope')} does not exist`,
    );
  });
});

describe('seeded shuffling, subsampling and splits', () => {
  const items = Array.from({ length: 100 }, (_, i) => i);

  it('shuffle is a seeded permutation', () => {
    const a = shuffle(items, 1);
    expect(shuffle(items, 1)).toEqual(a);
    expect(shuffle(items, 2)).not.toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(items);
    expect(a).not.toEqual(items);
    expect(permutation(0, 3)).toEqual([]);
    expect(() => shuffle(items, 1.5)).toThrow('seed must be an integer, got 1.5');
  });

  it('the permutation is uniform enough: each item lands in the first half about half the time', () => {
    const firstHalf = new Array(10).fill(0);
    for (let seed = 0; seed < 2000; seed++) {
      const p = permutation(10, seed);
      for (let i = 0; i < 5; i++) firstHalf[p[i]]++;
    }
    // Binomial(2000, 0.5): sd ~ 22; allow 5 sd.
    for (const count of firstHalf) expect(Math.abs(count - 1000)).toBeLessThan(112);
  });

  it('subsample takes a seeded prefix, or the first n without a seed', () => {
    expect(subsample(items, 5)).toEqual([0, 1, 2, 3, 4]);
    expect(subsample(items, 5, 9)).toEqual(shuffle(items, 9).slice(0, 5));
    expect(() => subsample(items, -1)).toThrow('subsample size must be a non-negative integer, got -1');
  });

  it('trainTestSplit: disjoint, covering, HF sizes (test = ceil(fraction * n))', () => {
    const { train, test } = trainTestSplit(items, { testSize: 0.155, seed: 3 });
    expect(test.length).toBe(16);
    expect(train.length).toBe(84);
    expect([...train, ...test].sort((x, y) => x - y)).toEqual(items);
    expect(trainTestSplit(items, { testSize: 0.155, seed: 3 })).toEqual({ train, test });
    expect(trainTestSplit(items, { testSize: 0.155, seed: 3 }).test).toEqual(shuffle(items, 3).slice(0, 16));
    expect(trainTestSplit(items, { testSize: 10 })).toEqual({
      train: items.slice(0, 90),
      test: items.slice(90),
    });
    expect(() => trainTestSplit(items, { testSize: 101 })).toThrow(
      'testSize must be a fraction in (0, 1) or a count in 0..100, got 101',
    );
  });
});

describe('default image decoder', () => {
  it('comes from the image module when it exists, else the error says to pass one', async () => {
    const { defaultImageDecoder } = await import('../src/datasets/images.js');
    if (existsSync(join(import.meta.dirname, '..', 'src', 'image', 'index.ts'))) {
      const decode = await defaultImageDecoder();
      const image = await decode(png(3, 2, 11));
      expect([image.width, image.height, ...image.data.subarray(0, 3)]).toEqual([3, 2, 11, 0, 0]);
    } else {
      await expect(defaultImageDecoder()).rejects.toThrow('no image decoder: pass the "decoder" option');
    }
  });
});
