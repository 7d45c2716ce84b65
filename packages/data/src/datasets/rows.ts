// One raw record (a JSONL object or a parquet row) -> an R1VSample, or the problem with it.
import { statSync } from 'node:fs';
import { relative } from 'node:path';
import type { R1VSample } from '../schema.js';
import { RowProblem } from './errors.js';
import { resolveInside } from './paths.js';

/** Column / key names of the R1-V fields in the files (defaults: `image`, `problem`, `solution`, `thinking`). */
export interface FieldNames {
  image: string;
  problem: string;
  solution: string;
  thinking: string;
}

export const DEFAULT_FIELDS: FieldNames = {
  image: 'image',
  problem: 'problem',
  solution: 'solution',
  thinking: 'thinking',
};

export function fieldNames(fields: Partial<FieldNames> = {}): FieldNames {
  const names = { ...DEFAULT_FIELDS, ...fields };
  for (const [key, name] of Object.entries(names)) {
    if (typeof name !== 'string' || name.length === 0)
      throw new Error(`fields.${key} must be a non-empty string`);
  }
  return names;
}

export interface RowContext {
  fields: FieldNames;
  /** Folder image paths are relative to (and must stay inside). */
  root: string;
  maxImageBytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(value: unknown, field: string, required: boolean): string | undefined {
  if (value === undefined || value === null) {
    if (required) throw new RowProblem(`field "${field}" is missing`, field);
    return undefined;
  }
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) {
    // Parquet BYTE_ARRAY columns without a UTF8 annotation arrive as bytes (read with utf8: false).
    try {
      return utf8.decode(value);
    } catch {
      throw new RowProblem(`field "${field}" is bytes that are not UTF-8 text`, field);
    }
  }
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new RowProblem(
    `field "${field}" must be a string, got ${Array.isArray(value) ? 'an array' : typeof value}`,
    field,
  );
}

function imagePath(path: string, ctx: RowContext, field: string): string {
  let abs: string;
  try {
    abs = resolveInside(ctx.root, path);
  } catch (err) {
    throw new RowProblem(`field "${field}": ${(err as Error).message}`, field);
  }
  let size: number;
  try {
    const st = statSync(abs);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch (err) {
    throw new RowProblem(
      `field "${field}": image ${JSON.stringify(path)} is unreadable (${(err as Error).message})`,
      field,
    );
  }
  if (size === 0) throw new RowProblem(`field "${field}": image ${JSON.stringify(path)} is empty`, field);
  if (size > ctx.maxImageBytes) {
    throw new RowProblem(
      `field "${field}": image ${JSON.stringify(path)} has ${size} bytes, over the limit of ${ctx.maxImageBytes}`,
      field,
    );
  }
  return relative(ctx.root, abs);
}

function imageBytes(bytes: Uint8Array, ctx: RowContext, field: string): Uint8Array {
  if (bytes.length === 0) throw new RowProblem(`field "${field}": image bytes are empty`, field);
  if (bytes.length > ctx.maxImageBytes) {
    throw new RowProblem(
      `field "${field}": image has ${bytes.length} bytes, over the limit of ${ctx.maxImageBytes}`,
      field,
    );
  }
  return bytes;
}

/** A path string, raw bytes, or an HF image struct `{bytes, path}` (bytes win when both are set). */
function image(value: unknown, ctx: RowContext): string | Uint8Array {
  const field = ctx.fields.image;
  if (value === undefined || value === null) throw new RowProblem(`field "${field}" is missing`, field);
  if (typeof value === 'string') return imagePath(value, ctx, field);
  if (value instanceof Uint8Array) return imageBytes(value, ctx, field);
  if (typeof value === 'object' && !Array.isArray(value)) {
    const { bytes, path } = value as { bytes?: unknown; path?: unknown };
    if (bytes instanceof Uint8Array) return imageBytes(bytes, ctx, field);
    if (bytes !== undefined && bytes !== null) {
      throw new RowProblem(`field "${field}.bytes" must be binary, got ${typeof bytes}`, field);
    }
    if (typeof path === 'string' && path.length > 0) return imagePath(path, ctx, field);
    throw new RowProblem(`field "${field}" has neither bytes nor a path`, field);
  }
  throw new RowProblem(`field "${field}" must be a path, bytes or {bytes, path}, got ${typeof value}`, field);
}

/** The sample of a record; other keys pass through unchanged. Throws RowProblem naming the field. */
export function recordToSample(record: unknown, ctx: RowContext): R1VSample {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new RowProblem(`row must be an object, got ${Array.isArray(record) ? 'an array' : String(record)}`);
  }
  const r = record as Record<string, unknown>;
  const { fields } = ctx;
  const problem = text(r[fields.problem], fields.problem, true)!;
  const solution = text(r[fields.solution], fields.solution, true)!;
  const thinking = text(r[fields.thinking], fields.thinking, false);
  const img = image(r[fields.image], ctx);
  const sample: R1VSample = { image: img, problem, solution };
  if (thinking !== undefined) sample.thinking = thinking;
  const mapped = new Set<string>(Object.values(fields));
  for (const [key, value] of Object.entries(r)) {
    if (!mapped.has(key) && !(key in sample)) sample[key] = value;
  }
  return sample;
}
