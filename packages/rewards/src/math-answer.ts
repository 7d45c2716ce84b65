// Parse a short math answer (a count, a GeoQA angle or length, a fraction, a surd, a percentage, a
// multiple-choice letter) into a value that can be compared. This stands in for the `math_verify.parse`
// / `verify` step of R1-V's `accuracy_reward` on the answer formats of the paper's tasks; it is not a
// computer algebra system.

import { isPyWhitespace, pyStrip } from './py-text.js';

/** A parsed answer. */
export interface MathAnswer {
  /** The numeric value, when the answer is a number or a closed-form expression such as `2\sqrt{3}`. */
  value?: number;
  /** Normalised unit: `°`, `%`, a unit word such as `cm` or `cm^2`, or `''` when there is none. */
  unit: string;
  /** The multiple-choice letter `A`..`Z`, for answers such as `(B)`, `B.` or `B. 70°`. */
  choice?: string;
}

/** Tolerances of {@link mathAnswersEqual}. */
export interface MathTolerance {
  /** Relative tolerance; default 1e-6 (math_verify compares floats rounded to 6 places). */
  relTol?: number;
  /** Absolute tolerance, for values near 0; default 1e-9. */
  absTol?: number;
}

/**
 * Answers longer than this (after trimming) are not parsed: real answers are short, and the cap bounds
 * the work on hostile input to a constant.
 */
export const MAX_MATH_ANSWER_LENGTH = 256;

/** Nesting depth of brackets / `\frac` / `\sqrt` the parser follows before giving up. */
const MAX_DEPTH = 32;

// Rewrites to a small canonical alphabet: `√`, `π`, `°`, `%`, `*`, `/`, `\frac`. The input is at most
// MAX_MATH_ANSWER_LENGTH characters, so these regexes run in bounded time.
const REWRITES: [RegExp, string][] = [
  [/\\(?:left|right|displaystyle|big|Big)(?![a-zA-Z])/g, ''],
  [/\\(?:text|textrm|textbf|mathrm|mathbf|mbox|operatorname|boxed|fbox)\s*\{([^{}]*)\}/g, '$1'],
  [/\{,\}/g, ','],
  [/\\[dt]frac/g, '\\frac'],
  [
    /\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|\^\s*\{\s*°\s*\}|[º˚]/g,
    '°',
  ],
  [/\\%/g, '%'],
  [/\\sqrt(?![a-zA-Z])/g, '√'],
  [/\\pi(?![a-zA-Z])/g, 'π'],
  [/\\(?:cdot|times)(?![a-zA-Z])|[×·∙⋅]/g, '*'],
  [/\\div(?![a-zA-Z])|÷/g, '/'],
  [/[−‒]/g, '-'],
  [/\\[,;:! ]|~/g, ' '],
];

const ANSWER_PREFIX = /^(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*:?|:)\s*/i;
const CHOICE = /^(?:(?:[Oo]ption|[Cc]hoice)\s*)?(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])(?![A-Za-z0-9]))[.):]?\s*/;
const NUMBER = /(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+/y;
const UNIT_WORD = /^([a-z]{1,12})(?:\^\{?([23])\}?|([²³]))?$/;

/** Replaces each run of Python whitespace with one space. */
function collapseWhitespace(text: string): string {
  let out = '';
  let inRun = false;
  for (let i = 0; i < text.length; i++) {
    const space = isPyWhitespace(text.charCodeAt(i));
    if (!space) out += text[i];
    else if (!inRun) out += ' ';
    inRun = space;
  }
  return out;
}

function unwrapMath(text: string): string {
  let s = text;
  for (;;) {
    const before = s;
    if (s.length >= 4 && s.startsWith('$$') && s.endsWith('$$')) s = s.slice(2, -2);
    else if (s.length >= 2 && s.startsWith('$') && s.endsWith('$')) s = s.slice(1, -1);
    else if ((s.startsWith('\\(') && s.endsWith('\\)')) || (s.startsWith('\\[') && s.endsWith('\\]'))) {
      s = s.slice(2, -2);
    }
    s = pyStrip(s);
    if (s === before) return s;
  }
}

/** Canonical form of a unit suffix: `°`, `%`, `cm`, `cm^2`, `''`; undefined when it is not a unit. */
function normaliseUnit(raw: string): string | undefined {
  const unit = pyStrip(raw).replace(/\.+$/, '').toLowerCase();
  if (unit === '' || unit === 'unit' || unit === 'units') return '';
  if (unit === '°' || unit === 'degree' || unit === 'degrees' || unit === 'deg') return '°';
  if (unit === '%' || unit === 'percent') return '%';
  const word = UNIT_WORD.exec(unit);
  if (word === null) return undefined;
  const power = word[2] ?? (word[3] === '²' ? '2' : word[3] === '³' ? '3' : undefined);
  return power === undefined ? word[1]! : `${word[1]}^${power}`;
}

/** Recursive-descent evaluator for the expressions answers contain: + - * /, ^, (), {}, √, π, \frac. */
class ExpressionParser {
  private i = 0;
  private depth = 0;

  constructor(private readonly s: string) {}

  /** Parses the longest expression prefix; returns its value and the unparsed rest. */
  parsePrefix(): { value: number; rest: string } | undefined {
    const value = this.expression();
    if (value === undefined) return undefined;
    return { value, rest: this.s.slice(this.i) };
  }

  private skipSpaces(): void {
    while (this.s[this.i] === ' ') this.i++;
  }

  /** Takes one nesting level; the caller gives it back with `depth--` once it returns. */
  private enter(): boolean {
    if (this.depth >= MAX_DEPTH) return false;
    this.depth++;
    return true;
  }

  private expression(): number | undefined {
    if (!this.enter()) return undefined;
    let value = this.term();
    while (value !== undefined) {
      this.skipSpaces();
      const op = this.s[this.i];
      if (op !== '+' && op !== '-') break;
      const save = this.i;
      this.i++;
      const right = this.term();
      if (right === undefined) {
        this.i = save;
        break;
      }
      value = op === '+' ? value + right : value - right;
    }
    this.depth--;
    return value;
  }

  private term(): number | undefined {
    let value = this.unary();
    while (value !== undefined) {
      const save = this.i;
      this.skipSpaces();
      const op = this.s[this.i];
      if (op === '*' || op === '/') {
        this.i++;
        const right = this.unary();
        if (right === undefined) {
          this.i = save;
          break;
        }
        value = op === '*' ? value * right : value / right;
      } else if (op === '√' || op === 'π' || op === '(' || this.s.startsWith('\\frac', this.i)) {
        // Implicit product: `2√3`, `4π`, `2(1+√3)`.
        const right = this.power();
        if (right === undefined) {
          this.i = save;
          break;
        }
        value *= right;
      } else {
        this.i = save;
        break;
      }
    }
    return value;
  }

  private unary(): number | undefined {
    this.skipSpaces();
    const sign = this.s[this.i];
    if (sign === '-' || sign === '+') {
      if (!this.enter()) return undefined;
      this.i++;
      const value = this.unary();
      this.depth--;
      return value === undefined ? undefined : sign === '-' ? -value : value;
    }
    return this.power();
  }

  private power(): number | undefined {
    const base = this.primary();
    if (base === undefined || this.s[this.i] !== '^') return base;
    const save = this.i;
    this.i++;
    const exponent = this.s[this.i] === '{' ? this.primary() : this.digit();
    if (exponent === undefined) {
      this.i = save;
      return base;
    }
    return base ** exponent;
  }

  private digit(): number | undefined {
    const code = this.s.charCodeAt(this.i);
    if (code < 0x30 || code > 0x39) return undefined;
    this.i++;
    return code - 0x30;
  }

  private number(): number | undefined {
    NUMBER.lastIndex = this.i;
    const match = NUMBER.exec(this.s);
    if (match === null) return undefined;
    this.i += match[0].length;
    const value = Number(match[0].replaceAll(',', ''));
    // A whole number directly followed by `\frac{p}{q}` is a mixed number: `2\frac{1}{3}` = 7/3.
    if (Number.isInteger(value) && this.s.startsWith('\\frac', this.i)) {
      const save = this.i;
      const fraction = this.primary();
      if (fraction !== undefined && fraction >= 0) return value + fraction;
      this.i = save;
    }
    return value;
  }

  /** A `\frac` argument: `{expr}` or a single digit (`\frac34`). */
  private fracArgument(): number | undefined {
    this.skipSpaces();
    return this.s[this.i] === '{' ? this.primary() : this.digit();
  }

  private grouped(close: string): number | undefined {
    this.i++;
    const value = this.expression();
    this.skipSpaces();
    if (value === undefined || this.s[this.i] !== close) return undefined;
    this.i++;
    return value;
  }

  private primary(): number | undefined {
    this.skipSpaces();
    const c = this.s[this.i];
    if (c === undefined) return undefined;
    if ((c >= '0' && c <= '9') || c === '.') return this.number();
    if (c === '(') return this.grouped(')');
    if (c === '{') return this.grouped('}');
    if (c === 'π') {
      this.i++;
      return Math.PI;
    }
    if (!this.enter()) return undefined;
    let value: number | undefined;
    if (c === '√') {
      this.i++;
      this.skipSpaces();
      const index = this.s[this.i] === '[' ? this.grouped(']') : 2;
      const radicand = index === undefined ? undefined : this.power();
      if (index !== undefined && radicand !== undefined) {
        value = index === 2 ? Math.sqrt(radicand) : radicand ** (1 / index);
      }
    } else if (this.s.startsWith('\\frac', this.i)) {
      this.i += 5;
      const numerator = this.fracArgument();
      const denominator = numerator === undefined ? undefined : this.fracArgument();
      value = denominator === undefined ? undefined : numerator! / denominator;
    }
    this.depth--;
    return value;
  }
}

/** Parses a number with an optional unit; undefined unless the whole text is one. */
function parseQuantity(text: string): MathAnswer | undefined {
  const parsed = new ExpressionParser(text).parsePrefix();
  if (parsed === undefined || !Number.isFinite(parsed.value)) return undefined;
  const unit = normaliseUnit(parsed.rest);
  return unit === undefined ? undefined : { value: parsed.value, unit };
}

/**
 * Parses an answer such as `3`, `70°`, `70 degrees`, `3cm`, `3 cm`, `2.5`, `3/4`, `\frac{3}{4}`,
 * `\sqrt{3}`, `2\sqrt{3}`, `2√{3}cm`, `15π`, `50%`, `(B)`, `B.`, `$x = 70^\circ$`; undefined when the
 * whole text is not one answer. Accepts `$...$` / `\(...\)` wrappers, `\boxed{}` / `\text{}`, a leading
 * `Answer:`, and keeps what follows the last `=`. Bounded work: the text is capped at
 * {@link MAX_MATH_ANSWER_LENGTH} characters and nesting at 32 levels.
 */
export function parseMathAnswer(text: string): MathAnswer | undefined {
  if (text.length > 4 * MAX_MATH_ANSWER_LENGTH) return undefined;
  let s = pyStrip(text);
  if (s.length === 0 || s.length > MAX_MATH_ANSWER_LENGTH) return undefined;
  s = unwrapMath(collapseWhitespace(s));
  for (const [pattern, replacement] of REWRITES) s = s.replace(pattern, replacement);
  s = unwrapMath(s.replace(ANSWER_PREFIX, ''));
  const equals = s.lastIndexOf('=');
  if (equals >= 0) s = pyStrip(s.slice(equals + 1));
  s = s.replace(/\.+$/, '');
  if (s.length === 0) return undefined;

  const choice = CHOICE.exec(s);
  if (choice !== null) {
    const letter = choice[1] ?? choice[2] ?? choice[3]!;
    const rest = s.slice(choice[0].length);
    if (rest === '') return { unit: '', choice: letter };
    const quantity = parseQuantity(rest);
    return quantity === undefined ? undefined : { ...quantity, choice: letter };
  }
  return parseQuantity(s);
}

function close(a: number, b: number, tolerance: MathTolerance): boolean {
  const relTol = tolerance.relTol ?? 1e-6;
  const absTol = tolerance.absTol ?? 1e-9;
  return Math.abs(a - b) <= Math.max(relTol * Math.max(Math.abs(a), Math.abs(b)), absTol);
}

/**
 * Whether two parsed answers agree. Choice letters are compared when both answers have one; otherwise
 * values, within a relative tolerance. Units must agree when both sides give one (`70°` vs `70 cm` is
 * wrong); an answer without a unit matches any unit (`70` matches `70°`, as math_verify drops units). A
 * percentage also matches its fraction (`50%` matches `0.5`).
 */
export function mathAnswersEqual(a: MathAnswer, b: MathAnswer, tolerance: MathTolerance = {}): boolean {
  if (a.choice !== undefined && b.choice !== undefined) return a.choice === b.choice;
  if (a.value === undefined || b.value === undefined) return false;
  if (a.unit !== '' && b.unit !== '' && a.unit !== b.unit) return false;
  if (close(a.value, b.value, tolerance)) return true;
  if (a.unit === '%' && b.unit === '') return close(a.value / 100, b.value, tolerance);
  if (b.unit === '%' && a.unit === '') return close(a.value, b.value / 100, tolerance);
  return false;
}
