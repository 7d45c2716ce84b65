// Accuracy rewards (paper Eq. 1's R_acc): the answer in the completion against the sample's ground truth.

import { firstTagContent, integerAnswer } from './extract.js';
import { type MathTolerance, mathAnswersEqual, parseMathAnswer } from './math-answer.js';
import { pyStrip, scanDecimalDigits } from './py-text.js';
import type { RewardFunction } from './types.js';

/** Options of the math / geometry accuracy reward. */
export interface MathAccuracyOptions extends MathTolerance {
  /** The sample field holding the ground truth; default `solution` (R1-V schema). */
  solutionField?: string;
}

/** Options of the counting accuracy reward. */
export interface CountingAccuracyOptions {
  /** The sample field holding the ground truth; default `solution` (R1-V schema). */
  solutionField?: string;
}

/** The ground truth of a sample as text; a clear error when the dataset lacks it. */
function solutionOf(sample: Record<string, unknown>, field: string, reward: string): string {
  const value = sample[field];
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  const fields = Object.keys(sample).join(', ') || 'none';
  throw new TypeError(
    `${reward}: the sample's '${field}' field must be the ground truth (string or number), got ` +
      `${value === null ? 'null' : typeof value}; the sample's fields are: ${fields}`,
  );
}

/**
 * R1-V's `accuracy_reward` for math and geometry (GeoQA): 1 or 0.
 *
 * 1. Value check (R1-V: `verify(parse(completion), parse(solution))` with math_verify): the content of the
 *    first `<answer>...</answer>` of each side (newlines allowed; the whole text when there is none) is
 *    parsed by {@link parseMathAnswer} and compared by {@link mathAnswersEqual}: `70°` = `70 degrees` =
 *    `70`, `3cm` = `3 cm`, `\frac{3}{4}` = `3/4` = `0.75`, `2\sqrt{3}` = `2√{3}`, `(B)` = `B.`.
 * 2. Otherwise R1-V's string fallback: `re.search(r'<answer>(.*?)</answer>', text)` on each side (the whole
 *    text when absent), Python-stripped, and 1 when the two strings are equal.
 */
export function scoreMathAnswer(completion: string, solution: string, tolerance: MathTolerance = {}): number {
  const answer = parseMathAnswer(firstTagContent(completion, 'answer', { dotAll: true }) ?? completion);
  if (answer !== undefined) {
    const truth = parseMathAnswer(firstTagContent(solution, 'answer', { dotAll: true }) ?? solution);
    if (truth !== undefined && mathAnswersEqual(answer, truth, tolerance)) return 1;
  }
  const groundTruth = pyStrip(firstTagContent(solution, 'answer') ?? solution);
  const studentAnswer = pyStrip(firstTagContent(completion, 'answer') ?? completion);
  return studentAnswer === groundTruth ? 1 : 0;
}

/** `int(text)` for a plain (optionally signed) integer, as canonical ASCII digits; else undefined. */
function canonicalInteger(text: string): string | undefined {
  const s = pyStrip(text);
  const signed = s.startsWith('-') || s.startsWith('+');
  const { end, digits } = scanDecimalDigits(s, signed ? 1 : 0);
  if (digits.length === 0 || end !== s.length) return undefined;
  let zeros = 0;
  while (zeros < digits.length - 1 && digits.charCodeAt(zeros) === 0x30) zeros++;
  const magnitude = zeros === 0 ? digits : digits.slice(zeros);
  return magnitude === '0' || !s.startsWith('-') ? magnitude : `-${magnitude}`;
}

/**
 * The counting metric of R1-V's SuperCLEVR evaluation (`test_qwen2vl_counting_superclevr.py`): 1 when the
 * first `<answer>` that holds only an integer (`<answer>\s*(\d+)\s*</answer>`) equals the ground-truth
 * count as an integer (`007` = `7`), else 0. The ground truth is a number, an integer string, or wrapped
 * as in the R1-V data (`<answer> 3 </answer>`). No string fallback: `<answer>three</answer>` scores 0.
 * Throws a TypeError when the ground truth is not an integer (a dataset error, not a model error).
 */
export function scoreCountingAnswer(completion: string, solution: string | number): number {
  const truth =
    typeof solution === 'number'
      ? Number.isSafeInteger(solution)
        ? String(solution)
        : undefined
      : canonicalInteger(integerAnswer(solution) ?? solution);
  if (truth === undefined) {
    throw new TypeError(`counting accuracy: the ground truth ${JSON.stringify(solution)} is not an integer`);
  }
  const answer = integerAnswer(completion);
  return answer !== undefined && canonicalInteger(answer) === truth ? 1 : 0;
}

/**
 * A math / geometry accuracy reward reading the ground truth from `sample[solutionField]`
 * (see {@link scoreMathAnswer}). R1-V uses this one reward for both counting and GeoQA training.
 */
export function createMathAccuracy(options: MathAccuracyOptions = {}): RewardFunction {
  const field = options.solutionField ?? 'solution';
  const tolerance: MathTolerance = { relTol: options.relTol, absTol: options.absTol };
  return (completion, context) =>
    scoreMathAnswer(completion, solutionOf(context.sample, field, 'math accuracy'), tolerance);
}

/** A counting accuracy reward reading the ground truth from `sample[solutionField]` ({@link scoreCountingAnswer}). */
export function createCountingAccuracy(options: CountingAccuracyOptions = {}): RewardFunction {
  const field = options.solutionField ?? 'solution';
  return (completion, context) => {
    const value = context.sample[field];
    return scoreCountingAnswer(
      completion,
      typeof value === 'number' ? value : solutionOf(context.sample, field, 'counting accuracy'),
    );
  };
}

/** Math / geometry accuracy on `sample.solution` with default tolerances ({@link scoreMathAnswer}). */
export const mathAccuracy: RewardFunction = createMathAccuracy();

/** The geometry reasoning (GeoQA) accuracy reward: {@link mathAccuracy}; answers like `70°`, `3cm`, `2√{3}`. */
export const geometryAccuracy: RewardFunction = mathAccuracy;

/**
 * R1-V's `accuracy_reward` name (TRL metric key `accuracy_reward`): {@link mathAccuracy}, which R1-V
 * applies to both the counting and the geometry task during training.
 */
export const accuracyReward: RewardFunction = mathAccuracy;

/** Visual counting accuracy on `sample.solution` ({@link scoreCountingAnswer}): the SuperCLEVR eval metric. */
export const countingAccuracy: RewardFunction = createCountingAccuracy();
