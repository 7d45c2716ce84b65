import { describe, expect, it } from 'vitest';
import { containsTaggedAnswer, formatReward, lenientFormatReward, matchesR1VFormat } from '../src/index.js';

// [name, completion, R1-V strict, lenient]. Expected values computed with CPython 3.11:
//   strict:  re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", s, re.DOTALL)
//   lenient: re.search(r"<think>.*?</think>.*?<answer>.*?</answer>", s, re.DOTALL)
const CASES: [string, string, number, number][] = [
  ['minimal', '<think>a</think><answer>b</answer>', 1, 1],
  ['empty tags', '<think></think><answer></answer>', 1, 1],
  ['space between blocks', '<think>a</think> <answer>b</answer>', 1, 1],
  [
    'newlines inside and between (DOTALL)',
    '<think>\nI count 3 cubes.\n</think>\n\n<answer>\n3\n</answer>',
    1,
    1,
  ],
  ['R1-V SFT layout', '<think>reasoning</think>\n\n<answer> 7 </answer>', 1, 1],
  ['lazy .*? extends: second answer block', '<think>a</think><answer>b</answer><answer>c</answer>', 1, 1],
  ['extra </answer> inside the answer', '<think>a</think><answer>b</answer></answer>', 1, 1],
  ['extra </think> inside the think', '<think>a</think>x</think><answer>b</answer>', 1, 1],
  ['answer block inside think', '<think><answer>b</answer></think><answer>c</answer>', 1, 1],
  ['two full pairs', '<think>a</think><answer>b</answer><think>c</think><answer>d</answer>', 1, 1],
  ['nested think', '<think><think>a</think></think><answer>b</answer>', 1, 1],
  ['text between blocks', '<think>a</think>so<answer>b</answer>', 0, 1],
  ['text between, then a later </think>', '<think>a</think>so</think>\n<answer>b</answer>', 1, 1],
  ['trailing newline', '<think>a</think><answer>b</answer>\n', 0, 1],
  ['trailing space', '<think>a</think><answer>b</answer> ', 0, 1],
  ['leading space', ' <think>a</think><answer>b</answer>', 0, 1],
  ['leading newline', '\n<think>a</think><answer>b</answer>', 0, 1],
  ['text before', 'Sure! <think>a</think><answer>b</answer>', 0, 1],
  ['no think', '<answer>b</answer>', 0, 0],
  ['no answer', '<think>a</think>', 0, 0],
  ['unclosed answer', '<think>a</think><answer>b', 0, 0],
  ['unclosed think', '<think>a<answer>b</answer>', 0, 0],
  ['answer before think', '<answer>b</answer><think>a</think>', 0, 0],
  ['uppercase tags', '<THINK>a</THINK><ANSWER>b</ANSWER>', 0, 0],
  ['space inside tag', '<think>a</think><answer>b</answer >', 0, 0],
  ['broken <answer tag', '<think></think><answer</answer>', 0, 0],
  ['NBSP between blocks (Python \\s)', '<think>a</think>\u00a0<answer>b</answer>', 1, 1],
  ['ideographic space between blocks', '<think>a</think>\u3000<answer>b</answer>', 1, 1],
  ['U+001C between blocks (Python \\s, not JS \\s)', '<think>a</think>\u001c<answer>b</answer>', 1, 1],
  ['U+0085 between blocks (Python \\s, not JS \\s)', '<think>a</think>\u0085<answer>b</answer>', 1, 1],
  ['U+FEFF between blocks (JS \\s, not Python \\s)', '<think>a</think>\ufeff<answer>b</answer>', 0, 1],
  ['zero-width space between blocks', '<think>a</think>\u200b<answer>b</answer>', 0, 1],
  ['CRLF between blocks', '<think>a</think>\r\n<answer>b</answer>', 1, 1],
  ['NUL inside tags', '<think>\u0000</think><answer>\u0000</answer>', 1, 1],
  ['NUL between blocks', '<think>a</think>\u0000<answer>b</answer>', 0, 1],
  ['NUL after the end', '<think>a</think><answer>b</answer>\u0000', 0, 1],
  ['lone surrogates inside tags', '<think>\ud800</think><answer>\udfff</answer>', 1, 1],
  ['empty string', '', 0, 0],
];

describe('formatReward (R1-V fullmatch with DOTALL)', () => {
  it.each(CASES)('%s', (_name, completion, strict) => {
    expect(formatReward(completion)).toBe(strict);
    expect(matchesR1VFormat(completion)).toBe(strict === 1);
  });
});

describe('lenientFormatReward (tags in order anywhere)', () => {
  it.each(CASES)('%s', (_name, completion, _strict, lenient) => {
    expect(lenientFormatReward(completion)).toBe(lenient);
    expect(containsTaggedAnswer(completion)).toBe(lenient === 1);
  });

  it('accepts everything the strict reward accepts', () => {
    for (const [, completion, strict] of CASES)
      if (strict === 1) expect(lenientFormatReward(completion)).toBe(1);
  });
});

// The R1-V pattern transcribed to a JavaScript regex, with Python's `\s` spelled out (JavaScript's `\s`
// differs). Backtracking is harmless on these short strings; it is the oracle, not the implementation.
const PY_WS =
  '[\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const R1V_ORACLE = new RegExp(`^<think>[^]*?</think>${PY_WS}*<answer>[^]*?</answer>$`);

describe('matchesR1VFormat against a regex oracle', () => {
  it('agrees on 20,000 random tag soups', () => {
    const pieces = [
      '<think>',
      '</think>',
      '<answer>',
      '</answer>',
      'a',
      ' ',
      '\n',
      '\u00a0',
      '\ufeff',
      '\u001c',
    ];
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor(seed / 65536) % n;
    };
    const segment = (max: number): string => {
      let s = '';
      for (let i = random(max); i > 0; i--) s += pieces[random(pieces.length)];
      return s;
    };
    let accepted = 0;
    for (let k = 0; k < 20_000; k++) {
      let s = `<think>${segment(3)}</think>${segment(3)}<answer>${segment(3)}</answer>`;
      if (random(4) === 0) s = segment(2) + s;
      if (random(4) === 0) s += segment(2);
      if (random(3) === 0) {
        const at = random(s.length + 1);
        s = s.slice(0, at) + segment(2) + s.slice(at + random(3));
      }
      const expected = R1V_ORACLE.test(s);
      if (matchesR1VFormat(s) !== expected) expect.fail(`disagrees with the regex on ${JSON.stringify(s)}`);
      if (expected) accepted++;
    }
    // Both outcomes are well represented, so the agreement means something.
    expect(accepted).toBeGreaterThan(4_000);
    expect(accepted).toBeLessThan(16_000);
  });
});
