import { describe, expect, it } from 'vitest';
import {
  decimalDigitValue,
  findTags,
  firstTagContent,
  integerAnswer,
  isPyWhitespace,
  lastTagContent,
  pyStrip,
} from '../src/index.js';

// [text, search, search DOTALL, findall[-1], findall DOTALL[-1]] of r'<answer>(.*?)</answer>', from CPython 3.11.
const TAG_CASES: [string, string | null, string | null, string | null, string | null][] = [
  ['<answer> 3 </answer>', ' 3 ', ' 3 ', ' 3 ', ' 3 '],
  ['<think>x</think><answer>70°</answer>', '70°', '70°', '70°', '70°'],
  ['<answer>\n3\n</answer>', null, '\n3\n', null, '\n3\n'],
  ['<answer>a</answer><answer>b</answer>', 'a', 'a', 'b', 'b'],
  ['<answer>a\n</answer><answer>b</answer>', 'b', 'a\n', 'b', 'b'],
  ['<answer>a<answer>b</answer>', 'a<answer>b', 'a<answer>b', 'a<answer>b', 'a<answer>b'],
  ['<answer>a</answer></answer>', 'a', 'a', 'a', 'a'],
  ['<answer>', null, null, null, null],
  ['</answer><answer>', null, null, null, null],
  ['no tags at all', null, null, null, null],
  ['<answer></answer>', '', '', '', ''],
  ['<answer>x\r</answer>', 'x\r', 'x\r', 'x\r', 'x\r'],
  ['<answer>1\n<answer>2</answer>', '2', '1\n<answer>2', '2', '1\n<answer>2'],
];

describe('tag extraction (Python re.search / re.findall semantics)', () => {
  it.each(TAG_CASES)('%j', (text, first, firstDotAll, last, lastDotAll) => {
    expect(firstTagContent(text, 'answer') ?? null).toBe(first);
    expect(firstTagContent(text, 'answer', { dotAll: true }) ?? null).toBe(firstDotAll);
    expect(lastTagContent(text, 'answer') ?? null).toBe(last);
    expect(lastTagContent(text, 'answer', { dotAll: true }) ?? null).toBe(lastDotAll);
  });

  it('findTags reports offsets of non-overlapping matches', () => {
    const text = '<answer>a</answer> x <answer>bc</answer>';
    expect(findTags(text, 'answer')).toEqual([
      { start: 0, contentStart: 8, contentEnd: 9, end: 18 },
      { start: 21, contentStart: 29, contentEnd: 31, end: 40 },
    ]);
    expect(findTags(text, 'answer', { limit: 1 })).toHaveLength(1);
    expect(findTags('<think>t</think>', 'think')).toEqual([
      { start: 0, contentStart: 7, contentEnd: 8, end: 16 },
    ]);
  });
});

// [text, re.search(r'<answer>\s*(\d+)\s*</answer>', text).group(1) as ASCII digits], from CPython 3.11.
const INTEGER_CASES: [string, string | undefined][] = [
  ['<answer>3</answer>', '3'],
  ['<answer> 3 </answer>', '3'],
  ['<answer>\n 12\t</answer>', '12'],
  ['<answer>007</answer>', '007'],
  ['<answer>3 cubes</answer>', undefined],
  ['<answer>3.0</answer>', undefined],
  ['<answer>-3</answer>', undefined],
  ['<answer>three</answer><answer>4</answer>', '4'],
  ['<answer>3</answer><answer>4</answer>', '3'],
  ['<answer>\u0663</answer>', '3'],
  ['<answer>\ud835\udfd1</answer>', '3'],
  ['<answer>\uff17</answer>', '7'],
  ['<answer>3\u00a0</answer>', '3'],
  ['<answer>3\ufeff</answer>', undefined],
  ['<answer></answer>', undefined],
  ['<answer> </answer>', undefined],
  ['<answer>3', undefined],
  ['3', undefined],
  ['<answer>1 2</answer>', undefined],
  ['<answer><answer>5</answer>', '5'],
];

describe('integerAnswer (R1-V SuperCLEVR eval regex)', () => {
  it.each(INTEGER_CASES)('%j', (text, expected) => {
    expect(integerAnswer(text)).toBe(expected);
  });
});

describe('Python str semantics', () => {
  it('isPyWhitespace is exactly CPython str.isspace() over the BMP', () => {
    // CPython 3.11: [c for c in range(0x110000) if chr(c).isspace()]
    const python = [
      0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
      0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
    ];
    const ours: number[] = [];
    for (let code = 0; code <= 0xffff; code++) if (isPyWhitespace(code)) ours.push(code);
    expect(ours).toEqual(python);
  });

  it('pyStrip matches str.strip()', () => {
    expect(pyStrip(' \t\n 3 \r\n')).toBe('3');
    expect(pyStrip('\u00a0\u3000x y\u0085\u001c')).toBe('x y');
    expect(pyStrip('\ufeff3\ufeff')).toBe('\ufeff3\ufeff');
    expect(pyStrip('   ')).toBe('');
    expect(pyStrip('')).toBe('');
  });

  it('decimalDigitValue matches unicodedata.decimal', () => {
    expect(decimalDigitValue('7'.codePointAt(0)!)).toBe(7);
    expect(decimalDigitValue(0x0663)).toBe(3); // ARABIC-INDIC DIGIT THREE
    expect(decimalDigitValue(0x09ef)).toBe(9); // BENGALI DIGIT NINE
    expect(decimalDigitValue(0xff10)).toBe(0); // FULLWIDTH DIGIT ZERO
    expect(decimalDigitValue(0x1d7ce)).toBe(0); // MATHEMATICAL BOLD DIGIT ZERO
    expect(decimalDigitValue(0x1d7d8)).toBe(0); // MATHEMATICAL DOUBLE-STRUCK DIGIT ZERO (second run)
    expect(decimalDigitValue(0x1d7ff)).toBe(9); // MATHEMATICAL MONOSPACE DIGIT NINE
    expect(decimalDigitValue(0x00b2)).toBe(-1); // SUPERSCRIPT TWO is No, not Nd
    expect(decimalDigitValue(0x2167)).toBe(-1); // ROMAN NUMERAL EIGHT
    expect(decimalDigitValue('a'.codePointAt(0)!)).toBe(-1);
  });
});
