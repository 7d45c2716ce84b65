/**
 * Sections other engineers own, imported dynamically when their files exist so that they show up in
 * `pnpm bench` as soon as they land (and are skipped with a note until then):
 *   - benchmarks/src/gemm.ts            `benchGemm({ quick }): Promise<GemmBenchRow[]>` (ours vs OpenBLAS)
 *   - benchmarks/src/attention.ts       `benchAttention({ quick }): Promise<AttentionBenchRow[]>`
 *   - benchmarks/src/model.ts           `benchModel({ quick }): Promise<ModelBenchRow[]>` (Qwen2-VL vs PyTorch)
 *   - benchmarks/src/model.ts           `benchModel({ quick }): Promise<ModelBenchRow[]>` (ours vs PyTorch)
 *   - packages/data/bench/text.ts       `benchTextPipeline()`
 *   - packages/data/bench/image.ts      `benchImageProcessor()`
 * Their results are rendered generically: an array of flat objects (or `{ rows }`) becomes a table.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { genericTable, type SectionResult, type Table } from './report.js';

interface External {
  id: string;
  title: string;
  /** Relative to this file. */
  path: string;
  exportName: string;
}

export const EXTERNAL_SECTIONS: External[] = [
  { id: 'gemm', title: 'GEMM: ours vs OpenBLAS', path: './gemm.ts', exportName: 'benchGemm' },
  {
    id: 'attention',
    title: 'Attention (CPU, flash-style)',
    path: './attention.ts',
    exportName: 'benchAttention',
  },
  {
    id: 'model',
    title: 'Qwen2-VL small model: ours vs PyTorch (forward + backward, generation, memory)',
    path: './model.ts',
    exportName: 'benchModel',
  },
  {
    id: 'data-text',
    title: 'Data pipeline: text',
    path: '../../packages/data/bench/text.ts',
    exportName: 'benchTextPipeline',
  },
  {
    id: 'data-image',
    title: 'Data pipeline: image processor',
    path: '../../packages/data/bench/image.ts',
    exportName: 'benchImageProcessor',
  },
];

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Tables from whatever the section returned: rows, `{ rows }`, `{ tables }` or one flat object. */
function toTables(result: unknown): Table[] {
  if (Array.isArray(result)) return result.length && result.every(isRecord) ? [genericTable(result)] : [];
  if (isRecord(result)) {
    if (Array.isArray(result.tables))
      return result.tables.flatMap((t: unknown) =>
        isRecord(t) && Array.isArray(t.rows)
          ? [genericTable(t.rows as Record<string, unknown>[], t.title as string)]
          : [],
      );
    if (Array.isArray(result.rows) && result.rows.every(isRecord)) return [genericTable(result.rows)];
    const flat = Object.fromEntries(
      Object.entries(result).filter(([, v]) => typeof v !== 'object' || v === null),
    );
    return Object.keys(flat).length ? [genericTable([flat])] : [];
  }
  return [];
}

export async function runExternal(e: External, opts: { quick: boolean }): Promise<SectionResult> {
  const url = new URL(e.path, import.meta.url);
  const file = fileURLToPath(url);
  const section: SectionResult = { id: e.id, title: e.title, tables: [], notes: [] };
  if (!existsSync(file)) {
    section.notes.push(
      `Skipped: ${e.path.replace(/^(\.\.\/)+/, '')} is not in the tree yet (hook: ${e.exportName}).`,
    );
    return section;
  }
  try {
    const mod = (await import(url.href)) as Record<string, unknown>;
    const fn = mod[e.exportName];
    if (typeof fn !== 'function') {
      section.notes.push(`Skipped: ${file} does not export a function ${e.exportName}.`);
      return section;
    }
    const result = await (fn as (o: { quick: boolean }) => unknown)({ quick: opts.quick });
    section.tables = toTables(result);
    if (!section.tables.length) section.notes.push(`Result: ${JSON.stringify(result)}`);
    section.raw = result;
  } catch (err) {
    section.notes.push(`Failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  return section;
}
