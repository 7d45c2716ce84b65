import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { filterJsonl, JsonlWriter, readJsonl } from '../src/run/jsonl.js';
import { listCheckpoints, locateResume, RunFolder } from '../src/run/run-folder.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'othink-run-'));

describe('metrics.jsonl', () => {
  it('one complete JSON line per record, appended', () => {
    const dir = tmp();
    const w = new JsonlWriter(join(dir, 'm.jsonl'));
    w.append({ step: 1, loss: 0.5 });
    w.append({ step: 2, loss: Number.NaN, kl: Number.POSITIVE_INFINITY });
    w.close();
    const w2 = new JsonlWriter(join(dir, 'm.jsonl'));
    w2.append({ step: 3, loss: 0.25 });
    w2.close();
    const text = readFileSync(join(dir, 'm.jsonl'), 'utf8');
    expect(text).toBe(
      '{"step":1,"loss":0.5}\n{"step":2,"loss":"NaN","kl":"Infinity"}\n{"step":3,"loss":0.25}\n',
    );
  });

  it('the reader skips a torn last line (a crash mid-write)', () => {
    const dir = tmp();
    const file = join(dir, 'm.jsonl');
    writeFileSync(file, '{"step":1}\n{"step":2}\n{"step":3,"lo');
    const { records, badLines } = readJsonl(file);
    expect(records).toEqual([{ step: 1 }, { step: 2 }]);
    expect(badLines).toEqual([3]);
    expect(readJsonl(join(dir, 'missing.jsonl'))).toEqual({ records: [], badLines: [] });
  });

  it('filterJsonl rewrites atomically', () => {
    const dir = tmp();
    const file = join(dir, 'm.jsonl');
    writeFileSync(file, '{"step":1}\n{"step":2}\n{"step":3}\n');
    expect(filterJsonl<{ step: number }>(file, (r) => r.step <= 2)).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe('{"step":1}\n{"step":2}\n');
  });
});

describe('RunFolder', () => {
  it('writes the config, metrics, completions, eval.json and the run state', () => {
    const dir = join(tmp(), 'run');
    const run = RunFolder.open(dir);
    run.writeConfig('name: x\n');
    run.metrics.append({ phase: 'sft', step: 1, loss: 2 });
    run.completions.append({ phase: 'grpo', step: 1, completion: 'a' });
    run.addEval({
      stage: 'before',
      task: 'counting',
      accuracy: 0.25,
      formatAccuracy: 0.5,
      n: 4,
      data: 'synthetic',
      time: 't',
      records: [],
    });
    run.addEval({
      stage: 'after sft',
      task: 'counting',
      accuracy: 0.75,
      formatAccuracy: 1,
      n: 4,
      data: 'synthetic',
      time: 't',
      records: [],
    });
    run.updatePhase('sft', { status: 'running', steps: 0, maxSteps: 10 });
    run.updatePhase('sft', { status: 'done', steps: 10, final: 'sft/final' });
    run.close();
    expect(readFileSync(join(dir, 'config.resolved.yaml'), 'utf8')).toBe('name: x\n');
    expect(run.readMetrics()).toEqual([{ phase: 'sft', step: 1, loss: 2 }]);
    expect(readJsonl(join(dir, 'completions.jsonl')).records).toHaveLength(1);
    const evalFile = JSON.parse(readFileSync(join(dir, 'eval.json'), 'utf8'));
    expect(evalFile.accuracy).toEqual({ before: { counting: 0.25 }, 'after sft': { counting: 0.75 } });
    expect(evalFile.evaluations).toHaveLength(2);
    expect(run.readState().phases.sft).toEqual({
      status: 'done',
      steps: 10,
      maxSteps: 10,
      final: 'sft/final',
    });
  });

  it('refuses to start a second run in a used folder, unless resuming', () => {
    const dir = join(tmp(), 'run');
    const run = RunFolder.open(dir);
    run.writeConfig('name: x\n');
    run.metrics.append({ step: 1 });
    run.close();
    expect(() => RunFolder.open(dir)).toThrow(
      /already holds a run; resume it with --resume .*, or pick another --output-dir/,
    );
    expect(() => RunFolder.open(dir, { resume: true })).not.toThrow();
    expect(() => RunFolder.open(join(tmp(), 'fresh'), { resume: true })).toThrow(/not a run folder/);
  });

  it('rewinds the logs of a phase to its checkpoint step', () => {
    const dir = join(tmp(), 'run');
    const run = RunFolder.open(dir);
    for (let s = 1; s <= 3; s++) run.metrics.append({ phase: 'sft', step: s });
    for (let s = 1; s <= 5; s++) {
      run.metrics.append({ phase: 'grpo', step: s });
      run.completions.append({ phase: 'grpo', step: s });
    }
    run.close();
    expect(run.rewindTo('grpo', 2)).toBe(3);
    expect(run.readMetrics().map((r) => `${r.phase}${r.step}`)).toEqual([
      'sft1',
      'sft2',
      'sft3',
      'grpo1',
      'grpo2',
    ]);
    expect(readJsonl(join(dir, 'completions.jsonl')).records).toHaveLength(2);
  });

  it('finds checkpoints and what --resume points at', () => {
    const dir = join(tmp(), 'run');
    const run = RunFolder.open(dir);
    run.writeConfig('name: x\n');
    for (const step of [10, 2, 30]) {
      mkdirSync(join(dir, 'grpo', `checkpoint-${step}`), { recursive: true });
      writeFileSync(join(dir, 'grpo', `checkpoint-${step}`, 'config.json'), '{}');
    }
    mkdirSync(join(dir, 'grpo', '.checkpoint-40.tmp-1'));
    mkdirSync(join(dir, 'grpo', 'checkpoint-50')); // incomplete: no config.json
    expect(listCheckpoints(join(dir, 'grpo')).map((c) => c.step)).toEqual([2, 10, 30]);
    expect(locateResume(dir)).toEqual({ runDir: dir });
    expect(locateResume(join(dir, 'grpo', 'checkpoint-10'))).toEqual({
      runDir: dir,
      phase: 'grpo',
      checkpoint: join(dir, 'grpo', 'checkpoint-10'),
    });
    expect(() => locateResume(join(dir, 'nope'))).toThrow(/no such folder/);
    expect(() => locateResume(join(dir, 'grpo'))).toThrow(/not a run folder/);
    appendFileSync(join(dir, 'x'), '');
    expect(existsSync(join(dir, 'x'))).toBe(true);
  });
});
