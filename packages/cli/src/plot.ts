// PNG plots of a run's curves (chart.js drawn on @napi-rs/canvas): one file per phase and group of
// metrics (loss; reward and reward_std; each reward function; kl and beta; clip ratios; completion
// length; learning rate; grad norm; tokens/s), plus the eval accuracies. Noisy series get an
// exponential moving average drawn over the faint raw curve.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import { DEFAULT_FONT_PATH, registerTaskFont } from '@othink/data';
import { Chart, type ChartConfiguration, type ChartDataset, registerables } from 'chart.js';
import { readJsonl } from './run/jsonl.js';
import type { EvalFile } from './run/run-folder.js';

let chartReady = false;
function setupChart(): void {
  if (chartReady) return;
  Chart.register(...registerables);
  if (existsSync(DEFAULT_FONT_PATH)) Chart.defaults.font.family = registerTaskFont(DEFAULT_FONT_PATH);
  Chart.defaults.font.size = 13;
  chartReady = true;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export interface Series {
  label: string;
  points: { x: number; y: number }[];
  /** Draw on the right-hand axis (a second scale, e.g. beta next to kl). */
  rightAxis?: boolean;
}

export interface LineChartSpec {
  title: string;
  xLabel?: string;
  yLabel?: string;
  rightLabel?: string;
  series: Series[];
  width?: number;
  height?: number;
  /** EMA weight of the smoothed overlay (0 = none); applied to series with more than 20 points. */
  smoothing?: number;
  logY?: boolean;
}

/** Exponential moving average with bias correction (TensorBoard's smoothing). */
export function ema(points: { x: number; y: number }[], weight: number): { x: number; y: number }[] {
  let last = 0;
  let debias = 0;
  return points.map((p) => {
    last = last * weight + (1 - weight) * p.y;
    debias = debias * weight + (1 - weight);
    return { x: p.x, y: last / debias };
  });
}

function withAlpha(hex: string, alpha: number): string {
  const a = Math.round(alpha * 255)
    .toString(16)
    .padStart(2, '0');
  return `${hex}${a}`;
}

const whiteBackground = {
  id: 'whiteBackground',
  beforeDraw(chart: Chart) {
    const g = chart.ctx;
    g.save();
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, chart.width, chart.height);
    g.restore();
  },
};

function render(config: ChartConfiguration, width: number, height: number): Buffer {
  setupChart();
  const canvas = createCanvas(width, height);
  // chart.js types its context as the DOM's; skia's 2D context implements the same API.
  const chart = new Chart(
    canvas.getContext('2d') as unknown as ConstructorParameters<typeof Chart>[0],
    config,
  );
  try {
    return canvas.toBuffer('image/png');
  } finally {
    chart.destroy();
  }
}

/** A line chart as PNG bytes. */
export function renderLineChart(spec: LineChartSpec): Buffer {
  const smoothing = spec.smoothing ?? 0.8;
  const datasets: ChartDataset<'line', { x: number; y: number }[]>[] = [];
  spec.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const smooth = smoothing > 0 && s.points.length > 20;
    const axis = s.rightAxis ? 'y1' : 'y';
    datasets.push({
      label: smooth ? `${s.label} (raw)` : s.label,
      data: s.points,
      borderColor: smooth ? withAlpha(color, 0.3) : color,
      backgroundColor: color,
      borderWidth: smooth ? 1 : 2,
      pointRadius: s.points.length > 40 ? 0 : 2,
      yAxisID: axis,
    });
    if (smooth) {
      datasets.push({
        label: s.label,
        data: ema(s.points, smoothing),
        borderColor: color,
        backgroundColor: color,
        borderWidth: 2,
        pointRadius: 0,
        yAxisID: axis,
      });
    }
  });
  const right = spec.series.some((s) => s.rightAxis);
  const config: ChartConfiguration<'line', { x: number; y: number }[]> = {
    type: 'line',
    data: { datasets },
    options: {
      responsive: false,
      animation: false,
      parsing: false,
      normalized: true,
      plugins: {
        title: { display: true, text: spec.title, font: { size: 16 } },
        legend: { display: true, position: 'bottom' },
      },
      scales: {
        x: { type: 'linear', title: { display: true, text: spec.xLabel ?? 'step' } },
        y: {
          type: spec.logY ? 'logarithmic' : 'linear',
          position: 'left',
          title: { display: spec.yLabel !== undefined, text: spec.yLabel ?? '' },
        },
        ...(right
          ? {
              y1: {
                type: 'linear' as const,
                position: 'right' as const,
                grid: { drawOnChartArea: false },
                title: { display: spec.rightLabel !== undefined, text: spec.rightLabel ?? '' },
              },
            }
          : {}),
      },
    },
    plugins: [whiteBackground],
  };
  return render(config as ChartConfiguration, spec.width ?? 900, spec.height ?? 500);
}

/** A grouped bar chart (eval accuracy per stage and task) as PNG bytes. */
export function renderBarChart(spec: {
  title: string;
  labels: string[];
  series: { label: string; values: (number | null)[] }[];
  yLabel?: string;
  yMax?: number;
  width?: number;
  height?: number;
}): Buffer {
  const config: ChartConfiguration<'bar', (number | null)[]> = {
    type: 'bar',
    data: {
      labels: spec.labels,
      datasets: spec.series.map((s, i) => ({
        label: s.label,
        data: s.values,
        backgroundColor: COLORS[i % COLORS.length],
      })),
    },
    options: {
      responsive: false,
      animation: false,
      plugins: {
        title: { display: true, text: spec.title, font: { size: 16 } },
        legend: { display: true, position: 'bottom' },
      },
      scales: {
        y: {
          beginAtZero: true,
          ...(spec.yMax !== undefined ? { max: spec.yMax } : {}),
          title: { display: spec.yLabel !== undefined, text: spec.yLabel ?? '' },
        },
      },
    },
    plugins: [whiteBackground],
  };
  return render(config as ChartConfiguration, spec.width ?? 900, spec.height ?? 500);
}

/** A group of metrics drawn in one PNG. */
interface MetricGroup {
  name: string;
  title: string;
  /** Metric keys on the left axis (a function: keys picked from those present). */
  keys: string[] | ((present: string[]) => string[]);
  right?: string[];
  yLabel?: string;
  rightLabel?: string;
}

export const METRIC_GROUPS: readonly MetricGroup[] = [
  { name: 'loss', title: 'loss', keys: ['loss'] },
  { name: 'reward', title: 'reward (mean and std over completions)', keys: ['reward', 'reward_std'] },
  {
    name: 'rewards',
    title: 'reward per function (mean)',
    keys: (present) => present.filter((k) => /^rewards\/[^/]+(\/mean)?$/.test(k)).sort(),
  },
  {
    name: 'kl',
    title: 'KL to the reference and its weight beta',
    keys: ['kl'],
    right: ['beta'],
    yLabel: 'kl',
    rightLabel: 'beta',
  },
  {
    name: 'clip_ratio',
    title: 'clipped ratio fraction',
    keys: (present) => present.filter((k) => k === 'clip_ratio' || k.startsWith('clip_ratio/')).sort(),
  },
  {
    name: 'completion_length',
    title: 'completion length (tokens)',
    keys: (present) =>
      present.filter((k) => k === 'completion_length' || k.startsWith('completion_length/')).sort(),
  },
  { name: 'learning_rate', title: 'learning rate', keys: ['learning_rate'] },
  { name: 'grad_norm', title: 'gradient norm (before clipping)', keys: ['grad_norm'] },
  { name: 'tokens_per_second', title: 'throughput (tokens / s)', keys: ['tokens_per_second'] },
];

function seriesOf(records: Record<string, unknown>[], key: string): { x: number; y: number }[] {
  const out: { x: number; y: number }[] = [];
  for (const r of records) {
    const x = r.step;
    const y = r[key];
    if (typeof x === 'number' && typeof y === 'number' && Number.isFinite(y)) out.push({ x, y });
  }
  return out;
}

export interface PlotOptions {
  width?: number;
  height?: number;
  smoothing?: number;
}

/**
 * Writes `<phase>-<group>.png` into `outDir` for every group with data, per phase in the records
 * (records without a phase count as `train`). Returns the files written.
 */
export function plotMetrics(
  records: Record<string, unknown>[],
  outDir: string,
  options: PlotOptions = {},
): string[] {
  mkdirSync(outDir, { recursive: true });
  const phases = [...new Set(records.map((r) => (typeof r.phase === 'string' ? r.phase : 'train')))];
  const written: string[] = [];
  for (const phase of phases) {
    const rows = records.filter((r) => (typeof r.phase === 'string' ? r.phase : 'train') === phase);
    const present = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    for (const g of METRIC_GROUPS) {
      const keys = typeof g.keys === 'function' ? g.keys(present) : g.keys;
      const series: Series[] = [];
      for (const k of keys) {
        const points = seriesOf(rows, k);
        if (points.length > 0) series.push({ label: k, points });
      }
      for (const k of g.right ?? []) {
        const points = seriesOf(rows, k);
        if (points.length > 0) series.push({ label: k, points, rightAxis: true });
      }
      if (series.length === 0) continue;
      const png = renderLineChart({
        title: `${phase}: ${g.title}`,
        series,
        yLabel: g.yLabel,
        rightLabel: g.rightLabel,
        width: options.width,
        height: options.height,
        smoothing: g.name === 'learning_rate' || g.name === 'kl' ? 0 : options.smoothing,
      });
      const file = join(outDir, `${phase}-${g.name}.png`);
      writeFileSync(file, png);
      written.push(file);
    }
  }
  return written;
}

/** `eval-accuracy.png`: accuracy per stage (before, after each phase), one bar per task. */
export function plotEval(evalFile: EvalFile, outDir: string, options: PlotOptions = {}): string | undefined {
  const stages = Object.keys(evalFile.accuracy);
  if (stages.length === 0) return undefined;
  const tasks = [...new Set(stages.flatMap((s) => Object.keys(evalFile.accuracy[s])))];
  mkdirSync(outDir, { recursive: true });
  const series = tasks.flatMap((task) => [
    { label: `${task} accuracy`, values: stages.map((s) => evalFile.accuracy[s][task] ?? null) },
    { label: `${task} format`, values: stages.map((s) => evalFile.formatAccuracy[s]?.[task] ?? null) },
  ]);
  const file = join(outDir, 'eval-accuracy.png');
  writeFileSync(
    file,
    renderBarChart({
      title: 'evaluation',
      labels: stages,
      series,
      yMax: 1,
      width: options.width,
      height: options.height,
    }),
  );
  return file;
}

/** All plots of a run folder from its metrics.jsonl (and eval.json) into `<run>/plots`. */
export function plotRun(runDir: string, options: PlotOptions & { outDir?: string } = {}): string[] {
  const metricsFile = join(runDir, 'metrics.jsonl');
  if (!existsSync(metricsFile)) throw new Error(`${runDir}: no metrics.jsonl (is it a run folder?)`);
  const { records } = readJsonl(metricsFile);
  const outDir = options.outDir ?? join(runDir, 'plots');
  const files = plotMetrics(records, outDir, options);
  const evalPath = join(runDir, 'eval.json');
  if (existsSync(evalPath)) {
    const file = plotEval(JSON.parse(readFileSync(evalPath, 'utf8')) as EvalFile, outDir, options);
    if (file) files.push(file);
  }
  return files;
}
