// Bad rows: where they are and what is wrong, and what to do about them.

/** `fail` (default): stop at the first bad row. `skip`: leave it out, count it and keep its message. */
export type BadRowPolicy = 'fail' | 'skip';

/** Where a row lives: JSONL rows by 1-based line number, parquet rows by 0-based row index. */
export interface RowLocation {
  file: string;
  /** JSONL: line number (1-based, blank lines counted). Parquet: row index (0-based, as `ds[i]`). */
  row: number;
  kind: 'jsonl' | 'parquet';
}

/** `train.jsonl:17` or `train.parquet row 16`. */
export function formatLocation(at: RowLocation): string {
  return at.kind === 'jsonl' ? `${at.file}:${at.row}` : `${at.file} row ${at.row}`;
}

export interface BadRow extends RowLocation {
  /** The field at fault, when there is one. */
  field?: string;
  /** Full message, location first: `train.jsonl:17: field "problem" is missing`. */
  message: string;
}

/** A row that cannot become a sample; the message names file, row and field. */
export class DatasetRowError extends Error {
  readonly file: string;
  readonly row: number;
  readonly field: string | undefined;

  constructor(at: RowLocation, problem: string, field?: string) {
    super(`${formatLocation(at)}: ${problem}`);
    this.name = 'DatasetRowError';
    this.file = at.file;
    this.row = at.row;
    this.field = field;
  }

  toBadRow(kind: RowLocation['kind']): BadRow {
    return { file: this.file, row: this.row, kind, field: this.field, message: this.message };
  }
}

/** What is wrong with a row, before its location is known to the code that found it. */
export class RowProblem extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'RowProblem';
  }
}
