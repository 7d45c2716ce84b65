// `othink repro`: the report's arithmetic (means and spread over seeds, table layout), the mixed
// warm-up data, and one end-to-end pass on minuscule settings that writes repro.json / repro.md and
// reuses finished runs when started again.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { meanStd, type ReproRun, reproMarkdown, runRepro } from '../src/commands/repro.js';
import { loadRunConfig } from '../src/config/load.js';
import { loadTestSamples, loadTrainSamples } from '../src/task/datasets.js';

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return {
    stream: new Writable({
      write(c, _e, cb) {
        chunks.push(String(c));
        cb();
      },
    }),
    text: () => chunks.join(''),
  };
}

function run(
  seed: number,
  method: ReproRun['method'],
  trainTask: ReproRun['trainTask'],
  vc: number,
  gr: number,
): ReproRun {
  return {
    seed,
    method,
    trainTask,
    dir: '',
    scores: {
      counting: { accuracy: vc, formatAccuracy: 1 },
      geometry: { accuracy: gr, formatAccuracy: 0.5 },
    },
  };
}

describe('repro report', () => {
  it('meanStd: mean and sample standard deviation', () => {
    expect(meanStd([0.5])).toEqual({ mean: 0.5, std: 0, n: 1 });
    const s = meanStd([1, 2, 3, 4]);
    expect(s.mean).toBe(2.5);
    // sum of squares 5 over n - 1 = 3
    expect(s.std).toBeCloseTo(Math.sqrt(5 / 3), 12);
  });

  it('puts same-task and cross-task cells where they belong, in percent with spread', () => {
    const runs = [
      run(1, 'base', 'mixed', 0.4, 0.1),
      run(2, 'base', 'mixed', 0.5, 0.2),
      // GRPO-D trained on counting: VC same-task 60 / 70 -> 65.0 ± 7.1; tested on geometry: U->R 5 / 15.
      run(1, 'grpo-d', 'counting', 0.6, 0.05),
      run(2, 'grpo-d', 'counting', 0.7, 0.15),
      // GRPO-D trained on geometry: GR same-task 30 / 30; tested on counting: R->U 20 / 40.
      run(1, 'grpo-d', 'geometry', 0.2, 0.3),
      run(2, 'grpo-d', 'geometry', 0.4, 0.3),
    ];
    const md = reproMarkdown(runs, [1, 2]);
    const rows = md.split('\n');
    const grpoD = rows.find((l) => l.startsWith('| + GRPO-D |'))!;
    expect(grpoD).toBe(`| + GRPO-D | 65.0 ± 7.1 | 30.0 ± 0.0 | 10.0 ± 7.1 | 30.0 ± 14.1 |`);
    expect(rows.find((l) => l.startsWith('| base'))).toBe(
      '| base (mixed SFT warm-up) | 45.0 ± 7.1 | 15.0 ± 7.1 | 15.0 ± 7.1 | 45.0 ± 7.1 |',
    );
    // Methods without runs say so instead of inventing a number.
    expect(rows.find((l) => l.startsWith('| + SFT |'))).toBe('| + SFT | n/a | n/a | n/a | n/a |');
    // The paper's table is there, with its constant-beta cross-task values marked as not reported.
    expect(md).toContain('| + GRPO-D | 76.50 | 34.35 | 16.18 | 69.50 |');
    expect(md).toContain('| + GRPO (constant β) | 64.50 | 30.24 | not reported | not reported |');
  });
});

describe("data.task 'mixed'", () => {
  it('trains on both synthetic tasks, half each, shuffled, and evaluates both by default', async () => {
    const { config } = loadRunConfig({
      set: [
        'data.task=mixed',
        'data.trainSize=9',
        'data.synthetic.width=120',
        'data.synthetic.height=120',
        'sft.maxSteps=1',
      ],
    });
    const { samples, description } = await loadTrainSamples(config);
    expect(samples).toHaveLength(9);
    const geometry = samples.filter((s) => /angle|length|measure|°|cm/i.test(`${s.problem} ${s.solution}`));
    expect(geometry.length).toBe(4);
    expect(description).toMatch(/synthetic counting \(n=5.*synthetic geometry \(n=4/);
  });
});

/** Width x height from a PNG's IHDR chunk. */
function pngSize(bytes: Uint8Array): string {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return `${v.getUint32(16)}x${v.getUint32(20)}`;
}

describe('cross-task test sets', () => {
  const firstImage = async (set: string[], task: 'counting' | 'geometry') => {
    const { config } = loadRunConfig({ set: [...set, 'sft.maxSteps=1', 'eval.testSize=1'] });
    return pngSize((await loadTestSamples(config, task)).samples[0].image as Uint8Array);
  };

  it('take the training image size when the other task can be drawn at it', async () => {
    const set = ['data.task=counting', 'data.synthetic.width=120', 'data.synthetic.height=130'];
    expect(await firstImage(set, 'counting')).toBe('120x130');
    expect(await firstImage(set, 'geometry')).toBe('120x130');
  });

  it("fall back to the other task's default size when it cannot (geometry needs >= 120 px)", async () => {
    const set = ['data.task=counting', 'data.synthetic.width=112', 'data.synthetic.height=84'];
    expect(await firstImage(set, 'counting')).toBe('112x84');
    expect(await firstImage(set, 'geometry')).toBe('400x300');
  });
});

describe('runRepro end to end (minuscule)', () => {
  it('trains base + 3 arms on one task, writes the report, and reuses finished runs', async () => {
    const out = mkdtempSync(join(tmpdir(), 'othink-repro-'));
    const set = [
      'data.trainSize=8',
      'eval.testSize=2',
      'eval.batchSize=2',
      'model.tiny.numHiddenLayers=1',
      'model.tiny.hiddenSize=32',
      'model.tiny.intermediateSize=64',
      'model.tiny.numAttentionHeads=2',
      'model.tiny.numKeyValueHeads=1',
    ];
    const log = sink();
    const md = await runRepro({ seeds: [5], tasks: ['counting'], out, set, maxSteps: 1, stream: log.stream });
    expect(existsSync(join(out, 'repro.md'))).toBe(true);
    expect(readFileSync(join(out, 'repro.md'), 'utf8')).toBe(md);
    const json = JSON.parse(readFileSync(join(out, 'repro.json'), 'utf8'));
    expect(json.runs.map((r: ReproRun) => `${r.method}/${r.trainTask}`)).toEqual([
      'base/mixed',
      'sft/counting',
      'grpo/counting',
      'grpo-d/counting',
    ]);
    for (const r of json.runs as ReproRun[]) {
      expect(Object.keys(r.scores).sort()).toEqual(['counting', 'geometry']);
    }
    // The GRPO-D arm really used the dynamic schedule with the counting range.
    const resolved = readFileSync(join(out, 'seed-5', 'grpo-d-counting', 'config.resolved.yaml'), 'utf8');
    expect(resolved).toMatch(/type: dynamic/);
    expect(resolved).toMatch(/betaMax: 0.1/);
    expect(log.text()).toMatch(/\[repro 4\/4\] seed 5 grpo-d on counting: done in/);
    // Started again: nothing is retrained.
    const again = sink();
    expect(
      await runRepro({ seeds: [5], tasks: ['counting'], out, set, maxSteps: 1, stream: again.stream }),
    ).toBe(md);
    expect(again.text().match(/done before, reusing/g)).toHaveLength(4);
  }, 120_000);
});
