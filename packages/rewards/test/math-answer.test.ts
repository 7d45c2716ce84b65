import { describe, expect, it } from 'vitest';
import { MAX_MATH_ANSWER_LENGTH, type MathAnswer, mathAnswersEqual, parseMathAnswer } from '../src/index.js';

const SQRT3 = Math.sqrt(3);

// [text, value, unit, choice]; value undefined for a bare choice.
const PARSED: [string, number | undefined, string, string?][] = [
  ['3', 3, ''],
  [' 12 ', 12, ''],
  ['-3', -3, ''],
  ['−3', -3, ''], // U+2212 MINUS SIGN
  ['3.5', 3.5, ''],
  ['.5', 0.5, ''],
  ['3.', 3, ''],
  ['1,000', 1000, ''],
  ['70°', 70, '°'],
  ['70 °', 70, '°'],
  ['70º', 70, '°'],
  ['70 degrees', 70, '°'],
  ['70 degree', 70, '°'],
  ['70^\\circ', 70, '°'],
  ['$70^{\\circ}$', 70, '°'],
  ['\\(70^\\circ\\)', 70, '°'],
  ['3cm', 3, 'cm'],
  ['3 cm', 3, 'cm'],
  ['3 CM', 3, 'cm'],
  ['3\\text{cm}', 3, 'cm'],
  ['12cm²', 12, 'cm^2'],
  ['12 cm^2', 12, 'cm^2'],
  ['12cm^{2}', 12, 'cm^2'],
  ['6 units', 6, ''],
  ['3/4', 0.75, ''],
  ['\\frac{3}{4}', 0.75, ''],
  ['\\dfrac{3}{4}', 0.75, ''],
  ['\\frac34', 0.75, ''],
  ['2\\frac{1}{4}', 2.25, ''],
  ['\\sqrt{3}', SQRT3, ''],
  ['\\sqrt3', SQRT3, ''],
  ['2\\sqrt{3}', 2 * SQRT3, ''],
  ['2√{3}', 2 * SQRT3, ''],
  ['2√3cm', 2 * SQRT3, 'cm'],
  ['√3/2', SQRT3 / 2, ''],
  ['\\frac{\\sqrt{3}}{2}', SQRT3 / 2, ''],
  ['\\sqrt[3]{8}', 2, ''],
  ['(1+√3)', 1 + SQRT3, ''],
  ['2^{3}', 8, ''],
  ['15π', 15 * Math.PI, ''],
  ['4\\pi', 4 * Math.PI, ''],
  ['3 \\times 4', 12, ''],
  ['50%', 50, '%'],
  ['50\\%', 50, '%'],
  ['50 percent', 50, '%'],
  ['\\boxed{12}', 12, ''],
  ['x = 70°', 70, '°'],
  ['∠CBD=180°-110°=70°', 70, '°'],
  ['Answer: 5', 5, ''],
  ['The answer is 5.', 5, ''],
  ['3 apples', 3, 'apples'],
  ['(B)', undefined, '', 'B'],
  ['B.', undefined, '', 'B'],
  ['B', undefined, '', 'B'],
  ['B)', undefined, '', 'B'],
  ['[C]', undefined, '', 'C'],
  ['Option D', undefined, '', 'D'],
  ['B. 70°', 70, '°', 'B'],
  ['(B) 70 degrees', 70, '°', 'B'],
];

const UNPARSED = [
  '',
  '   ',
  'x',
  'seventy',
  '3,4',
  '3 apples and 4 pears',
  'A triangle',
  'b',
  'cm²',
  '1e5',
  '1/0',
  '√-1',
  '3 + ',
  '(((3)',
  '<answer>3</answer>',
  'm/s',
  `${'('.repeat(100)}3${')'.repeat(100)}`,
  '1'.repeat(MAX_MATH_ANSWER_LENGTH + 1),
];

describe('parseMathAnswer', () => {
  it.each(PARSED)('%j', (text, value, unit, choice) => {
    const parsed = parseMathAnswer(text);
    expect(parsed).toBeDefined();
    if (value === undefined) expect(parsed!.value).toBeUndefined();
    else expect(parsed!.value).toBeCloseTo(value, 12);
    expect(parsed!.unit).toBe(unit);
    expect(parsed!.choice).toBe(choice);
  });

  it.each(UNPARSED)('rejects %j', (text) => {
    expect(parseMathAnswer(text)).toBeUndefined();
  });

  it('follows nesting up to its depth limit', () => {
    expect(parseMathAnswer(`${'('.repeat(20)}3${')'.repeat(20)}`)?.value).toBe(3);
  });
});

const answer = (text: string): MathAnswer => {
  const parsed = parseMathAnswer(text);
  if (parsed === undefined) throw new Error(`test setup: ${text} does not parse`);
  return parsed;
};

// [a, b, equal]
const EQUALITY: [string, string, boolean][] = [
  ['70°', '70 degrees', true],
  ['70', '70°', true],
  ['70°', '70^\\circ', true],
  ['70°', '110°', false],
  ['70°', '70cm', false],
  ['3cm', '3 cm', true],
  ['3cm', '3', true],
  ['3cm', '3m', false],
  ['3/4', '\\frac{3}{4}', true],
  ['3/4', '0.75', true],
  ['0.7500001', '0.75', true], // within rtol 1e-6
  ['0.7501', '0.75', false],
  ['\\frac{1}{3}', '0.3333', false],
  ['2\\sqrt{3}', '2√{3}', true],
  ['2\\sqrt{3}', '\\sqrt{12}', true],
  ['2\\sqrt{3}', '3.46', false],
  ['50%', '50', true],
  ['50%', '0.5', true],
  ['50%', '0.6', false],
  ['(B)', 'B.', true],
  ['(B)', 'C', false],
  ['B. 70°', 'B', true],
  ['B. 70°', '70°', true],
  ['(B)', '70°', false],
  ['0', '0.0', true],
];

describe('mathAnswersEqual', () => {
  it.each(EQUALITY)('%j vs %j', (a, b, equal) => {
    expect(mathAnswersEqual(answer(a), answer(b))).toBe(equal);
    expect(mathAnswersEqual(answer(b), answer(a))).toBe(equal);
  });

  it('uses the absolute tolerance near zero and honours custom tolerances', () => {
    expect(mathAnswersEqual({ value: 0, unit: '' }, { value: 1e-12, unit: '' })).toBe(true);
    expect(mathAnswersEqual({ value: 0, unit: '' }, { value: 1e-6, unit: '' })).toBe(false);
    expect(mathAnswersEqual(answer('3.46'), answer('2\\sqrt{3}'), { relTol: 1e-2 })).toBe(true);
    expect(mathAnswersEqual(answer('0.7500001'), answer('0.75'), { relTol: 0 })).toBe(false);
  });
});
