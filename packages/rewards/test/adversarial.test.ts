import { describe, expect, it } from 'vitest';
import {
  firstTagContent,
  formatReward,
  integerAnswer,
  lastTagContent,
  lenientFormatReward,
  paperReward,
  parseMathAnswer,
  scoreCountingAnswer,
  scoreMathAnswer,
} from '../src/index.js';

// Hostile completions: each reward must return the right value, never throw, and stay linear. The
// bound is deliberately loose (2 s for work that takes milliseconds) so CI noise cannot flake it; a
// quadratic scan of 1 MB would take minutes.
const BOUND_MS = 2_000;
const MB = 1 << 20;

function timed<T>(fn: () => T): T {
  const started = performance.now();
  const result = fn();
  expect(performance.now() - started).toBeLessThan(BOUND_MS);
  return result;
}

interface Expected {
  format: number;
  lenient: number;
  /** scoreMathAnswer against `<answer>70°</answer>`. */
  math: number;
  /** scoreCountingAnswer against 3. */
  counting: number;
}

// Strict-format values were checked with CPython's re.fullmatch on scaled-down copies of these inputs.
const HOSTILE: [string, () => string, Expected][] = [
  [
    '1 MB of reasoning',
    () => `<think>${'a'.repeat(MB)}</think>\n<answer>70°</answer>`,
    { format: 1, lenient: 1, math: 1, counting: 0 },
  ],
  [
    '1 MB answer of digits',
    () => `<think>t</think><answer>${'9'.repeat(MB)}</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 0 },
  ],
  [
    '10,000 nested <think> tags',
    () => `${'<think>'.repeat(10_000)}x${'</think>'.repeat(10_000)}<answer>3</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 1 },
  ],
  [
    '10,000 unclosed <think> tags',
    () => `${'<think>'.repeat(10_000)}<answer>3</answer>`,
    { format: 0, lenient: 0, math: 0, counting: 1 },
  ],
  [
    '100,000 unclosed <answer> tags',
    () => `<think>t</think>${'<answer>'.repeat(100_000)}`,
    { format: 0, lenient: 0, math: 0, counting: 0 },
  ],
  [
    '100,000 <answer> tags, one newline, one close',
    () => `<think>t</think>${'<answer>'.repeat(100_000)}\n70°</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 0 },
  ],
  [
    '100,000 </think> tags each followed by spaces',
    () => `<think>${'</think>          '.repeat(100_000)}x</answer>`,
    { format: 0, lenient: 0, math: 0, counting: 0 },
  ],
  [
    '100,000 </think> tags, the last one valid',
    () => `<think>${'</think> '.repeat(100_000)}<answer>3</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 1 },
  ],
  [
    '100,000 unbalanced closing tags first',
    () => `${'</think></answer>'.repeat(100_000)}<think>a</think><answer>70°</answer>`,
    { format: 0, lenient: 1, math: 1, counting: 0 },
  ],
  [
    '100,000 <answer> tags holding spaces and digits',
    () => `${'<answer> 1 2 '.repeat(100_000)}<answer>3</answer>`,
    { format: 0, lenient: 0, math: 0, counting: 1 },
  ],
  ['1 MB of NUL bytes', () => '\u0000'.repeat(MB), { format: 0, lenient: 0, math: 0, counting: 0 }],
  [
    'NUL bytes inside the tags',
    () => `<think>${'\u0000'.repeat(MB)}</think><answer>3\u0000</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 0 },
  ],
  [
    'lone surrogates everywhere',
    () => `<think>${'\ud800'.repeat(MB / 2)}</think><answer>${'\udfff'.repeat(MB / 2)}</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 0 },
  ],
  [
    'lone surrogates around a good answer',
    () => `<think>\udc00</think><answer>3</answer>${'\ud800'.repeat(MB)}`,
    { format: 0, lenient: 1, math: 0, counting: 1 },
  ],
  [
    '1 MB of nested brackets in the answer',
    () => `<think>t</think><answer>${'('.repeat(MB / 2)}3${')'.repeat(MB / 2)}</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 0 },
  ],
  [
    'nested \\frac past the depth limit, within the length cap',
    () => `<think>t</think><answer>${'\\frac{'.repeat(20)}1${'}{2}'.repeat(20)}</answer>`,
    { format: 1, lenient: 1, math: 0, counting: 0 },
  ],
  [
    '1 MB of whitespace after the answer',
    () => `<think>t</think><answer>70°</answer>${' \n'.repeat(MB / 2)}`,
    { format: 0, lenient: 1, math: 1, counting: 0 },
  ],
];

describe.each(HOSTILE)('%s', (_name, make, expected) => {
  const completion = make();

  it('formatReward', () => expect(timed(() => formatReward(completion))).toBe(expected.format));
  it('lenientFormatReward', () =>
    expect(timed(() => lenientFormatReward(completion))).toBe(expected.lenient));
  it('scoreMathAnswer', () =>
    expect(timed(() => scoreMathAnswer(completion, '<answer>70°</answer>'))).toBe(expected.math));
  it('scoreCountingAnswer', () =>
    expect(timed(() => scoreCountingAnswer(completion, 3))).toBe(expected.counting));
  it('extraction and parsing', () => {
    timed(() => {
      firstTagContent(completion, 'answer');
      firstTagContent(completion, 'answer', { dotAll: true });
      lastTagContent(completion, 'answer');
      lastTagContent(completion, 'think', { dotAll: true });
      integerAnswer(completion);
      parseMathAnswer(completion);
    });
  });
});

describe('hostile batches through paperReward', () => {
  it('scores eight 1 MB completions without failures', async () => {
    const completions = HOSTILE.slice(0, 8).map(([, make]) => make());
    const reward = paperReward({ logger: { warn: (line) => expect.fail(line) } });
    const started = performance.now();
    const batch = await reward.score({ completions, samples: completions.map(() => ({ solution: '70°' })) });
    expect(performance.now() - started).toBeLessThan(4 * BOUND_MS);
    expect(batch.perFunction.format_reward).toEqual(HOSTILE.slice(0, 8).map(([, , e]) => e.format));
    expect(batch.perFunction.accuracy_reward).toEqual(HOSTILE.slice(0, 8).map(([, , e]) => e.math));
    expect(reward.failureStats().accuracy_reward!.count).toBe(0);
  });

  it('handles big digit strings exactly in counting', () => {
    const digits = '9'.repeat(MB);
    expect(timed(() => scoreCountingAnswer(`<answer>${digits}</answer>`, `<answer>${digits}</answer>`))).toBe(
      1,
    );
    expect(
      timed(() => scoreCountingAnswer(`<answer>${digits}8</answer>`, `<answer>${digits}</answer>`)),
    ).toBe(0);
  });
});
