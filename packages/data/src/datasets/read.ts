// Shared options and the bad-row policy of the JSONL and parquet readers.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { R1VSample } from '../schema.js';
import { type BadRow, type BadRowPolicy, DatasetRowError, type RowLocation, RowProblem } from './errors.js';
import {
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_MAX_IMAGE_PIXELS,
  defaultImageDecoder,
  type ImageDecoder,
  imageProblem,
  setSampleSource,
} from './images.js';
import { resolveInside } from './paths.js';
import { type FieldNames, fieldNames, type RowContext, recordToSample } from './rows.js';

export interface ReadOptions {
  /** Names of the R1-V fields in the file, e.g. `{ problem: 'question', solution: 'answer' }`. */
  fields?: Partial<FieldNames>;
  /** `fail` (default): throw a DatasetRowError at the first bad row. `skip`: drop it and list it in `badRows`. */
  onBadRow?: BadRowPolicy;
  /** Folder image paths are relative to and confined to (default: the folder of the file). */
  imageRoot?: string;
  /** Largest encoded image accepted, in bytes (default 64 MiB). */
  maxImageBytes?: number;
  /** Decode every image while reading, so unreadable or oversize images are bad rows now rather than later. */
  validateImages?: boolean;
  /** Decoder for `validateImages` (default: the image module's `decodeImage`). */
  decoder?: ImageDecoder;
  /** Largest decoded image accepted with `validateImages`, in pixels (default PIL's 89,478,485). */
  maxImagePixels?: number;
}

export interface DatasetPart {
  samples: R1VSample[];
  /** Rows left out under `onBadRow: 'skip'` (empty under `fail`). */
  badRows: BadRow[];
}

/** Turns records into samples under the bad-row policy; one per file. */
export class RowCollector {
  readonly samples: R1VSample[] = [];
  readonly badRows: BadRow[] = [];
  readonly ctx: RowContext;
  readonly policy: BadRowPolicy;
  private readonly decoder: Promise<ImageDecoder> | undefined;

  constructor(
    readonly file: string,
    readonly kind: RowLocation['kind'],
    readonly options: ReadOptions,
  ) {
    const policy = options.onBadRow ?? 'fail';
    if (policy !== 'fail' && policy !== 'skip')
      throw new Error(`onBadRow must be "fail" or "skip", got ${JSON.stringify(policy)}`);
    this.policy = policy;
    const maxImageBytes = options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
    if (!(maxImageBytes > 0)) throw new Error(`maxImageBytes must be positive, got ${maxImageBytes}`);
    this.ctx = {
      fields: fieldNames(options.fields),
      root: resolve(options.imageRoot ?? dirname(file)),
      maxImageBytes,
    };
    this.decoder = options.validateImages
      ? Promise.resolve(options.decoder ?? defaultImageDecoder())
      : undefined;
  }

  /** Adds the record at `row`, or handles it as a bad row (throwing under `fail`). */
  async add(row: number, record: unknown | RowProblem): Promise<void> {
    const at: RowLocation = { file: this.file, row, kind: this.kind };
    try {
      if (record instanceof RowProblem) throw record;
      const sample = recordToSample(record, this.ctx);
      setSampleSource(sample, { ...at, root: this.ctx.root });
      if (this.decoder) await this.validateImage(sample);
      this.samples.push(sample);
    } catch (err) {
      if (!(err instanceof RowProblem)) throw err;
      const bad = new DatasetRowError(at, err.message, err.field);
      if (this.policy === 'fail') throw bad;
      this.badRows.push(bad.toBadRow(this.kind));
    }
  }

  private async validateImage(sample: R1VSample): Promise<void> {
    const field = this.ctx.fields.image;
    const decode = await this.decoder!;
    let bytes: Uint8Array;
    try {
      bytes =
        sample.image instanceof Uint8Array
          ? sample.image
          : await readFile(resolveInside(this.ctx.root, sample.image));
    } catch (err) {
      throw new RowProblem(`field "${field}": cannot read the image: ${(err as Error).message}`, field);
    }
    let problem: string | undefined;
    try {
      problem = imageProblem(await decode(bytes), this.options.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS);
    } catch (err) {
      problem = `cannot decode the image: ${(err as Error).message}`;
    }
    if (problem) throw new RowProblem(`field "${field}": ${problem}`, field);
  }

  result(): DatasetPart {
    return { samples: this.samples, badRows: this.badRows };
  }
}
