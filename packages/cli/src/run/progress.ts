// Training progress: a cli-progress bar with ETA on a terminal, a plain line every N steps or S
// seconds otherwise (CI logs), nothing in `none` mode. Messages printed through `log` / `warn` do
// not tear the bar.
import cliProgress from 'cli-progress';

export type ProgressMode = 'bars' | 'plain' | 'none';

export interface ProgressOptions {
  /** `auto` picks bars when the stream is a terminal. */
  mode?: ProgressMode | 'auto';
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Plain mode: a line every this many steps ... */
  everySteps?: number;
  /** ... or after this many seconds, whichever comes first. */
  everySeconds?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** The numbers a progress line shows (any StepMetrics fits). */
export interface ProgressMetrics {
  step: number;
  loss?: number;
  reward?: number;
  reward_std?: number;
  kl?: number;
  beta?: number;
  completion_length?: number;
  learning_rate?: number;
  grad_norm?: number;
  tokens_per_second?: number;
  [key: string]: unknown;
}

/** `1h02m`, `4m16s`, `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  if (a >= 100) return v.toFixed(1);
  const s = v.toPrecision(4);
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

/** The metric part of a progress line: `loss 0.0123 | reward 1.25 ± 0.43 | acc 0.62 | kl ...`. */
export function formatMetrics(m: ProgressMetrics): string {
  const parts: string[] = [];
  const loss = num(m.loss);
  if (loss !== undefined) parts.push(`loss ${fmt(loss)}`);
  const reward = num(m.reward);
  if (reward !== undefined) {
    const std = num(m.reward_std);
    parts.push(`reward ${fmt(reward)}${std !== undefined ? ` ± ${fmt(std)}` : ''}`);
  }
  for (const [key, short] of [
    ['rewards/accuracy_reward/mean', 'acc'],
    ['rewards/format_reward/mean', 'fmt'],
  ] as const) {
    const v = num(m[key]);
    if (v !== undefined) parts.push(`${short} ${fmt(v)}`);
  }
  const kl = num(m.kl);
  if (kl !== undefined) parts.push(`kl ${fmt(kl)}`);
  const beta = num(m.beta);
  if (beta !== undefined) parts.push(`beta ${fmt(beta)}`);
  const len = num(m.completion_length);
  if (len !== undefined) parts.push(`len ${fmt(len)}`);
  const lr = num(m.learning_rate);
  if (lr !== undefined) parts.push(`lr ${lr.toExponential(1)}`);
  const gn = num(m.grad_norm);
  if (gn !== undefined) parts.push(`gnorm ${fmt(gn)}`);
  const tps = num(m.tokens_per_second);
  if (tps !== undefined) parts.push(`${Math.round(tps)} tok/s`);
  return parts.join(' | ');
}

export class Progress {
  readonly mode: ProgressMode;
  private readonly stream: NodeJS.WritableStream;
  private readonly everySteps: number;
  private readonly everySeconds: number;
  private readonly now: () => number;
  private bars: cliProgress.MultiBar | undefined;
  private bar: cliProgress.SingleBar | undefined;
  private phase = '';
  private total = 0;
  private startStep = 0;
  private startedAt = 0;
  private lastLineAt = 0;
  private lastLineStep = 0;
  private lastStep = 0;
  private unit = 'step';
  private active = false;

  constructor(options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    const mode = options.mode ?? 'auto';
    this.mode = mode === 'auto' ? ((this.stream as NodeJS.WriteStream).isTTY ? 'bars' : 'plain') : mode;
    this.everySteps = options.everySteps ?? 10;
    this.everySeconds = options.everySeconds ?? 30;
    this.now = options.now ?? Date.now;
  }

  /** A phase of `total` steps begins (at `startStep` when resumed); `unit` names what is counted. */
  start(phase: string, total: number, startStep = 0, unit = 'step'): void {
    this.end();
    this.phase = phase;
    this.unit = unit;
    this.total = total;
    this.startStep = startStep;
    this.lastStep = startStep;
    this.startedAt = this.now();
    this.active = true;
    this.lastLineAt = this.startedAt;
    this.lastLineStep = startStep;
    if (this.mode === 'bars') {
      this.bars = new cliProgress.MultiBar(
        {
          stream: this.stream as NodeJS.WriteStream,
          format: `${phase.padEnd(4)} |{bar}| {value}/{total} | {duration_formatted} < ETA {eta_formatted} | {stats}`,
          barsize: 24,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          etaBuffer: 20,
          fps: 5,
          // Draw even when `bars` is forced on a stream that is not a terminal.
          noTTYOutput: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar = this.bars.create(total, startStep, { stats: '' });
    } else if (this.mode === 'plain') {
      this.line(
        `[${phase}] ${startStep > 0 ? `resuming at ${unit} ${startStep} of ${total}` : `${total} ${unit}s`}`,
      );
    }
  }

  /** After an optimizer step. */
  update(m: ProgressMetrics): void {
    this.lastStep = m.step;
    if (this.mode === 'bars') {
      this.bar?.update(m.step, { stats: formatMetrics(m) });
      return;
    }
    if (this.mode !== 'plain') return;
    const t = this.now();
    const due =
      m.step - this.lastLineStep >= this.everySteps ||
      (t - this.lastLineAt) / 1000 >= this.everySeconds ||
      m.step === this.total ||
      m.step === this.startStep + 1;
    if (!due) return;
    this.lastLineAt = t;
    this.lastLineStep = m.step;
    const done = m.step - this.startStep;
    const perStep = done > 0 ? (t - this.startedAt) / 1000 / done : Number.NaN;
    const eta = perStep * (this.total - m.step);
    const pct = this.total > 0 ? Math.floor((100 * m.step) / this.total) : 0;
    const stats = formatMetrics(m);
    this.line(
      `[${this.phase}] ${this.unit} ${m.step}/${this.total} (${pct}%)${stats ? ` | ${stats}` : ''} | ${perStep.toFixed(2)} s/${this.unit} | ETA ${formatDuration(eta)}`,
    );
  }

  /** A message that keeps the bar intact. */
  log(message: string): void {
    if (this.mode === 'none') return;
    if (this.bars) this.bars.log(`${message}\n`);
    else this.line(message);
  }

  /** Warnings are shown in every mode. */
  warn(message: string): void {
    if (this.bars) this.bars.log(`warning: ${message}\n`);
    else this.line(`warning: ${message}`);
  }

  /** The phase is over (or stopped): the bar stays on screen with its last values. */
  end(): void {
    if (this.bars) {
      this.bars.stop();
      this.bars = undefined;
      this.bar = undefined;
    } else if (this.mode === 'plain' && this.unit === 'step' && this.active) {
      const seconds = (this.now() - this.startedAt) / 1000;
      this.line(
        `[${this.phase}] ${this.lastStep - this.startStep} ${this.unit}s in ${formatDuration(seconds)}`,
      );
    }
    this.active = false;
  }

  private line(text: string): void {
    this.stream.write(`${text}\n`);
  }
}
