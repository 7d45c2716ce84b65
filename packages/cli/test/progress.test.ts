import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StopSignal } from '../src/run/interrupt.js';
import { formatDuration, formatMetrics, Progress } from '../src/run/progress.js';

/** A non-TTY stream that keeps what was written. */
function sink(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { text: () => string };
  w.text = () => chunks.join('');
  return w;
}

describe('progress without a terminal', () => {
  it('auto picks plain lines on a non-TTY stream', () => {
    expect(new Progress({ stream: sink() }).mode).toBe('plain');
  });

  it('prints the first step, then every N steps or S seconds, and the last, with ETA', () => {
    const out = sink();
    let now = 0;
    const p = new Progress({ stream: out, everySteps: 5, everySeconds: 60, now: () => now });
    p.start('grpo', 12);
    for (let step = 1; step <= 12; step++) {
      now += 2000; // 2 s per step
      // Step 8 arrives after a long pause: the time rule prints it.
      if (step === 8) now += 60_000;
      p.update({
        step,
        loss: 0.5,
        reward: 1.25,
        reward_std: 0.5,
        kl: 0.001,
        beta: 0.07,
        learning_rate: 1e-4,
      });
    }
    p.end();
    const lines = out.text().trim().split('\n');
    expect(lines[0]).toBe('[grpo] 12 steps');
    expect(lines[1]).toBe(
      '[grpo] step 1/12 (8%) | loss 0.5 | reward 1.25 ± 0.5 | kl 0.001 | beta 0.07 | lr 1.0e-4 | 2.00 s/step | ETA 22s',
    );
    expect(lines.slice(2, -1).map((l) => l.split(' |')[0])).toEqual([
      '[grpo] step 6/12 (50%)',
      '[grpo] step 8/12 (66%)',
      '[grpo] step 12/12 (100%)',
    ]);
    expect(lines.at(-1)).toBe('[grpo] 12 steps in 1m24s');
  });

  it('a resumed phase counts from its start step; logs and warnings are plain lines', () => {
    const out = sink();
    let now = 0;
    const p = new Progress({ stream: out, everySteps: 100, now: () => now });
    p.start('sft', 10, 6);
    now += 1000;
    p.update({ step: 7, loss: 1 });
    p.log('hello');
    p.warn('careful');
    p.end();
    expect(out.text()).toBe(
      '[sft] resuming at step 6 of 10\n[sft] step 7/10 (70%) | loss 1 | 1.00 s/step | ETA 3s\nhello\nwarning: careful\n[sft] 1 steps in 1s\n',
    );
  });

  it('none mode prints warnings only', () => {
    const out = sink();
    const p = new Progress({ stream: out, mode: 'none' });
    p.start('sft', 3);
    p.update({ step: 1, loss: 1 });
    p.log('quiet');
    p.warn('loud');
    p.end();
    expect(out.text()).toBe('warning: loud\n');
  });

  it('bars mode draws a cli-progress bar on the given stream', () => {
    const out = sink();
    const p = new Progress({ stream: out, mode: 'bars' });
    p.start('grpo', 4);
    p.update({ step: 4, loss: 0.1 });
    p.end();
    expect(out.text()).toMatch(/grpo +\|.*\| 4\/4 \|.*ETA.*loss 0\.1/);
  });

  it('formats numbers and durations', () => {
    expect(formatDuration(5)).toBe('5s');
    expect(formatDuration(256)).toBe('4m16s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatDuration(Number.NaN)).toBe('?');
    expect(
      formatMetrics({
        step: 1,
        loss: Number.NaN,
        'rewards/accuracy_reward/mean': 0.25,
        tokens_per_second: 1234.6,
      }),
    ).toBe('loss NaN | acc 0.25 | 1235 tok/s');
  });
});

describe('Ctrl-C', () => {
  it('the first SIGINT asks for a stop, the second quits with 130', () => {
    const target = new EventEmitter();
    const exits: number[] = [];
    const messages: string[] = [];
    const s = new StopSignal({ target, exit: (c) => exits.push(c), log: (m) => messages.push(m) }).install();
    expect(s.requested).toBe(false);
    target.emit('SIGINT');
    expect(s.requested).toBe(true);
    expect(s.stopReason).toBe('SIGINT');
    expect(exits).toEqual([]);
    expect(messages[0]).toMatch(
      /stopping after this step \(GRPO: after the last update of this rollout\) and saving a checkpoint \(press Ctrl-C again to quit at once\)/,
    );
    target.emit('SIGINT');
    expect(exits).toEqual([130]);
    expect(messages[1]).toMatch(/quitting now without saving/);
    s.uninstall();
    expect(target.listenerCount('SIGINT')).toBe(0);
  });

  it('SIGTERM stops cleanly too and never quits at once', () => {
    const target = new EventEmitter();
    const exits: number[] = [];
    const s = new StopSignal({ target, exit: (c) => exits.push(c), log: () => {} }).install();
    target.emit('SIGTERM');
    target.emit('SIGTERM');
    expect(s.requested).toBe(true);
    expect(s.stopReason).toBe('SIGTERM');
    expect(exits).toEqual([]);
    s.uninstall();
  });

  it('a stop can be requested from code', () => {
    const s = new StopSignal({ target: new EventEmitter() });
    s.request('time limit');
    expect(s.requested).toBe(true);
    expect(s.stopReason).toBe('time limit');
  });
});
