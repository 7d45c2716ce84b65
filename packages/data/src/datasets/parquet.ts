// Hugging Face parquet datasets: image struct columns `{bytes, path}`, read with hyparquet.
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { type DatasetPart, type ReadOptions, RowCollector } from './read.js';

/**
 * Reads an R1-V parquet file (HF `datasets` layout: `image` as `struct<bytes: binary, path: string>`
 * or a plain path / binary column). Rows are reported by 0-based index (`train.parquet row 16: ...`).
 * A column that is missing altogether is an error for the whole file, whatever the bad-row policy.
 */
export async function readParquet(file: string, options: ReadOptions = {}): Promise<DatasetPart> {
  let buffer: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new Error(`cannot read ${file} as parquet: ${(err as Error).message}`);
  }
  const collector = new RowCollector(file, 'parquet', options);
  const { fields } = collector.ctx;
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  for (const key of ['image', 'problem', 'solution'] as const) {
    if (!columns.includes(fields[key])) {
      throw new Error(
        `${file}: column "${fields[key]}" is missing (columns: ${columns.join(', ')}); set fields.${key} to the column that holds the ${key}`,
      );
    }
  }
  // One row group at a time, so a large file is never decoded whole at once.
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    // utf8: false keeps image bytes binary; annotated string columns still arrive as strings.
    const rows = await parquetReadObjects({
      file: buffer,
      metadata,
      rowStart,
      rowEnd,
      utf8: false,
      compressors,
    });
    for (let i = 0; i < rows.length; i++) await collector.add(rowStart + i, rows[i]);
    rowStart = rowEnd;
  }
  return collector.result();
}
