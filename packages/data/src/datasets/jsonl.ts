// JSONL datasets: one JSON object per line, images as paths relative to the dataset folder.
import { readFile } from 'node:fs/promises';
import { RowProblem } from './errors.js';
import { type DatasetPart, type ReadOptions, RowCollector } from './read.js';

/**
 * Reads an R1-V JSONL file. Rows are reported by line number (`train.jsonl:17: ...`); blank lines
 * are skipped. Image paths resolve inside `imageRoot` (default: the file's folder).
 */
export async function readJsonl(file: string, options: ReadOptions = {}): Promise<DatasetPart> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  const collector = new RowCollector(file, 'jsonl', options);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      record = new RowProblem(`not valid JSON (${(err as Error).message})`);
    }
    await collector.add(i + 1, record);
  }
  return collector.result();
}
