/** Result types shared by the sections, and their markdown rendering. */

export interface Column {
  key: string;
  label: string;
  /** Digits after the point for numbers (default: 3 significant digits). */
  digits?: number;
}

export interface Table {
  title?: string;
  columns: Column[];
  rows: Record<string, unknown>[];
}

export type TargetStatus = 'met' | 'missed' | 'not measured';

export interface Target {
  name: string;
  status: TargetStatus;
  detail: string;
}

export interface SectionResult {
  id: string;
  title: string;
  /** What is measured and how bytes / flops are counted. */
  description?: string;
  tables: Table[];
  notes: string[];
  targets?: Target[];
  /** Everything measured (all samples), for the JSON. */
  raw?: unknown;
  /** Seconds the section took. */
  seconds?: number;
}

export function formatNumber(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? '–' : String(x);
  if (digits !== undefined) return x.toFixed(digits);
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a >= 0.001) return x.toPrecision(3);
  return x.toExponential(2);
}

function cell(v: unknown, digits?: number): string {
  if (v === undefined || v === null) return '–';
  if (typeof v === 'number') return formatNumber(v, digits);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'object') return JSON.stringify(v).replaceAll('|', '\\|');
  return String(v).replaceAll('|', '\\|');
}

export function markdownTable(t: Table): string {
  const lines: string[] = [];
  if (t.title) lines.push(`**${t.title}**`, '');
  lines.push(`| ${t.columns.map((c) => c.label).join(' | ')} |`);
  lines.push(`| ${t.columns.map(() => '---').join(' | ')} |`);
  for (const r of t.rows) lines.push(`| ${t.columns.map((c) => cell(r[c.key], c.digits)).join(' | ')} |`);
  return lines.join('\n');
}

/** Columns for rows of unknown shape (the sections other engineers own): every key, in first-seen order. */
export function genericTable(rows: readonly Record<string, unknown>[], title?: string): Table {
  const keys: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  return { title, columns: keys.map((k) => ({ key: k, label: k })), rows: [...rows] };
}

export function markdownSection(s: SectionResult): string {
  const parts = [`## ${s.title}`, ''];
  if (s.description) parts.push(s.description, '');
  for (const t of s.tables) parts.push(markdownTable(t), '');
  if (s.targets?.length) {
    parts.push('Targets:', '');
    for (const t of s.targets) parts.push(`- **${t.status.toUpperCase()}**: ${t.name}. ${t.detail}`);
    parts.push('');
  }
  if (s.notes.length) {
    parts.push('Notes:', '');
    for (const n of s.notes) parts.push(`- ${n}`);
    parts.push('');
  }
  if (s.seconds !== undefined) parts.push(`_Section time: ${s.seconds.toFixed(0)} s._`, '');
  return parts.join('\n');
}
