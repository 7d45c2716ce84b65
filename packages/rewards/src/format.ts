// Format rewards: does the completion put its reasoning and answer in the tags the prompt asks for.
// Paper §3.1 ("following DeepSeek-R1-Zero"), implemented as in R1-V's `format_reward` (grpo.py).

import { skipPyWhitespace } from './py-text.js';

const THINK_OPEN = '<think>';
const THINK_CLOSE = '</think>';
const ANSWER_OPEN = '<answer>';
const ANSWER_CLOSE = '</answer>';

/**
 * Whether the whole text matches R1-V's format: exactly
 * `re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", text, re.DOTALL)`.
 *
 * Under `fullmatch` the lazy `.*?` still extends as far as needed, so the accepted set is: the text starts
 * with `<think>`, ends with `</answer>`, and some `</think>` after the opening tag is followed by optional
 * Python whitespace and then an `<answer>` that ends before the final `</answer>`. Tags inside the
 * contents are allowed, e.g. `<think>a</think><answer>b</answer><answer>c</answer>` matches (answer
 * content `b</answer><answer>c`). Nothing may precede `<think>` or follow the last `</answer>`, not even a
 * newline. Tags are case-sensitive.
 *
 * Linear-time scan over the `</think>` occurrences: the whitespace runs that follow them are disjoint.
 */
export function matchesR1VFormat(text: string): boolean {
  if (!text.startsWith(THINK_OPEN) || !text.endsWith(ANSWER_CLOSE)) return false;
  const finalClose = text.length - ANSWER_CLOSE.length;
  let thinkClose = text.indexOf(THINK_CLOSE, THINK_OPEN.length);
  while (thinkClose >= 0) {
    // `\s*` is greedy and `<` is not whitespace, so `<answer>` can only start where the run ends.
    const answerOpen = skipPyWhitespace(text, thinkClose + THINK_CLOSE.length);
    // Later `</think>`s only push the `<answer>` further right.
    if (answerOpen + ANSWER_OPEN.length > finalClose) return false;
    if (text.startsWith(ANSWER_OPEN, answerOpen)) return true;
    thinkClose = text.indexOf(THINK_CLOSE, thinkClose + 1);
  }
  return false;
}

/**
 * R1-V's `format_reward` (paper Eq. 1's R_format): 1 when the whole completion matches
 * `<think>.*?</think>\s*<answer>.*?</answer>` with `re.DOTALL` (see {@link matchesR1VFormat}), else 0.
 * This is the `re.fullmatch` version from R1-V commit 9cd640a, not open-r1-multimodal's older `re.match`
 * without DOTALL, which rejected newlines inside the tags.
 */
export function formatReward(completion: string): number {
  return matchesR1VFormat(completion) ? 1 : 0;
}

/**
 * Whether `<think>`, `</think>`, `<answer>`, `</answer>` occur in this order anywhere in the text:
 * `re.search(r"<think>.*?</think>.*?<answer>.*?</answer>", text, re.DOTALL)`. Taking the earliest
 * occurrence of each tag in turn is optimal, so four `indexOf` calls decide it.
 */
export function containsTaggedAnswer(text: string): boolean {
  const thinkOpen = text.indexOf(THINK_OPEN);
  if (thinkOpen < 0) return false;
  const thinkClose = text.indexOf(THINK_CLOSE, thinkOpen + THINK_OPEN.length);
  if (thinkClose < 0) return false;
  const answerOpen = text.indexOf(ANSWER_OPEN, thinkClose + THINK_CLOSE.length);
  if (answerOpen < 0) return false;
  return text.indexOf(ANSWER_CLOSE, answerOpen + ANSWER_OPEN.length) >= 0;
}

/**
 * A lenient format reward (not in R1-V): 1 when a `<think>...</think>` block is followed, anywhere later,
 * by an `<answer>...</answer>` block ({@link containsTaggedAnswer}), with any text before, between and
 * after. Useful as a shaping signal for base models that chatter around the tags; the paper's runs use
 * the strict {@link formatReward}.
 */
export function lenientFormatReward(completion: string): number {
  return containsTaggedAnswer(completion) ? 1 : 0;
}
