// Append-only JSON Lines: each record is one write of one complete line followed by fsync, so a
// crash or a kill leaves every earlier line intact and at worst a torn last line, which the reader
// skips.
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';

/** Non-finite numbers are kept readable ("NaN", "Infinity") instead of JSON's null. */
function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

export function jsonLine(record: unknown): string {
  return `${JSON.stringify(record, replacer)}\n`;
}

export class JsonlWriter {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    private readonly options: { fsync?: boolean } = {},
  ) {}

  append(record: unknown): void {
    if (this.fd === undefined) this.fd = openSync(this.path, 'a');
    const buf = Buffer.from(jsonLine(record));
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    if (this.options.fsync ?? true) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface JsonlContents<T> {
  records: T[];
  /** 1-based line numbers that were not valid JSON objects (a torn last line after a crash). */
  badLines: number[];
}

export function readJsonl<T = Record<string, unknown>>(path: string): JsonlContents<T> {
  const records: T[] = [];
  const badLines: number[] = [];
  if (!existsSync(path)) return { records, badLines };
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      const v = JSON.parse(line);
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) records.push(v as T);
      else badLines.push(i + 1);
    } catch {
      badLines.push(i + 1);
    }
  });
  return { records, badLines };
}

/** Rewrites a JSONL file keeping only the records `keep` accepts (atomically: temp file, rename). */
export function filterJsonl<T = Record<string, unknown>>(path: string, keep: (record: T) => boolean): number {
  if (!existsSync(path)) return 0;
  const { records } = readJsonl<T>(path);
  const kept = records.filter(keep);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, kept.map(jsonLine).join(''));
  renameSync(tmp, path);
  return records.length - kept.length;
}

/** Writes a whole file atomically (temp file in the same folder, fsync, rename). */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
