import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ema, plotRun, renderLineChart } from '../src/plot.js';
import { jsonLine } from '../src/run/jsonl.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Checks the PNG signature and returns the IHDR width and height. */
function pngSize(bytes: Uint8Array): { width: number; height: number } {
  expect([...bytes.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(String.fromCharCode(...bytes.subarray(12, 16))).toBe('IHDR');
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Metrics as the trainers log them: 12 SFT steps, then 30 GRPO steps. */
function fakeMetrics(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let step = 1; step <= 12; step++) {
    out.push({
      phase: 'sft',
      step,
      loss: 5 / step,
      learning_rate: 1e-3,
      grad_norm: 2,
      tokens_per_second: 5000,
    });
  }
  for (let step = 1; step <= 30; step++) {
    const acc = Math.min(1, step / 30);
    out.push({
      phase: 'grpo',
      step,
      loss: 0.01 * Math.sin(step),
      reward: 1 + acc,
      reward_std: 0.4,
      'rewards/accuracy_reward/mean': acc,
      'rewards/format_reward/mean': 1,
      kl: 0.001 * step,
      beta: 0.07 - 0.001 * step,
      clip_ratio: 0,
      'clip_ratio/low': 0,
      'clip_ratio/high': 0,
      completion_length: 40 + step,
      learning_rate: 1e-4,
      grad_norm: step === 5 ? 'NaN' : 0.5,
      tokens_per_second: 1200,
    });
  }
  return out;
}

describe('plots', () => {
  it('renders a valid PNG of the requested size', () => {
    const png = renderLineChart({
      title: 'loss',
      series: [
        { label: 'loss', points: Array.from({ length: 50 }, (_, i) => ({ x: i + 1, y: 1 / (i + 1) })) },
      ],
      width: 640,
      height: 360,
    });
    expect(pngSize(png)).toEqual({ width: 640, height: 360 });
    expect(png.length).toBeGreaterThan(5_000);
  });

  it('othink plot: one PNG per phase and metric group, plus the eval chart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'othink-plot-'));
    writeFileSync(join(dir, 'metrics.jsonl'), `${fakeMetrics().map(jsonLine).join('')}{"phase":"grpo","st`);
    writeFileSync(
      join(dir, 'eval.json'),
      JSON.stringify({
        evaluations: [],
        accuracy: {
          before: { counting: 0.1 },
          'after sft': { counting: 0.4 },
          'after grpo': { counting: 0.6 },
        },
        formatAccuracy: {
          before: { counting: 0 },
          'after sft': { counting: 0.9 },
          'after grpo': { counting: 1 },
        },
      }),
    );
    const files = plotRun(dir);
    expect(files.map((f) => basename(f)).sort()).toEqual([
      'eval-accuracy.png',
      'grpo-clip_ratio.png',
      'grpo-completion_length.png',
      'grpo-grad_norm.png',
      'grpo-kl.png',
      'grpo-learning_rate.png',
      'grpo-loss.png',
      'grpo-reward.png',
      'grpo-rewards.png',
      'grpo-tokens_per_second.png',
      'sft-grad_norm.png',
      'sft-learning_rate.png',
      'sft-loss.png',
      'sft-tokens_per_second.png',
    ]);
    for (const f of files) {
      expect(f.startsWith(join(dir, 'plots'))).toBe(true);
      expect(pngSize(readFileSync(f))).toEqual({ width: 900, height: 500 });
    }
  });

  it('a folder without metrics.jsonl is not a run', () => {
    expect(() => plotRun(mkdtempSync(join(tmpdir(), 'othink-plot-')))).toThrow(/no metrics\.jsonl/);
  });

  it('EMA smoothing is bias-corrected', () => {
    const s = ema(
      [
        { x: 1, y: 10 },
        { x: 2, y: 10 },
        { x: 3, y: 0 },
      ],
      0.5,
    );
    expect(s[0].y).toBeCloseTo(10);
    expect(s[1].y).toBeCloseTo(10);
    expect(s[2].y).toBeCloseTo((10 * (0.25 + 0.125)) / 0.875 + 0, 5);
  });
});
