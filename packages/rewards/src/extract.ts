// Linear-time tag extraction. Completions are untrusted model output, so these are scanners with
// monotone `indexOf` pointers, not backtracking regexes: every call is O(text length) however many
// nested, repeated or unclosed tags the text holds.

import { scanDecimalDigits, skipPyWhitespace } from './py-text.js';

/** One `<tag>...</tag>` match: offsets into the scanned text. */
export interface TagMatch {
  /** Offset of `<tag>`. */
  start: number;
  /** Offset just after `<tag>`: where the content starts. */
  contentStart: number;
  /** Offset of the closing `</tag>`: where the content ends. */
  contentEnd: number;
  /** Offset just after `</tag>`. */
  end: number;
}

export interface TagScanOptions {
  /**
   * Let the content span newlines, like Python's `re.DOTALL`. Default false, as in R1-V's
   * `re.search(r'<answer>(.*?)</answer>', ...)` where `.` does not match `\n`.
   */
  dotAll?: boolean;
  /** Stop after this many matches. */
  limit?: number;
}

/**
 * All non-overlapping `<tag>(.*?)</tag>` matches, left to right: exactly Python's
 * `re.finditer(rf'<{tag}>(.*?)</{tag}>', text[, re.DOTALL])`. The content of a match runs to the
 * nearest closing tag, so `<tag>a<tag>b</tag>` gives one match with content `a<tag>b`.
 */
export function findTags(text: string, tag: string, options: TagScanOptions = {}): TagMatch[] {
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  const dotAll = options.dotAll ?? false;
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const matches: TagMatch[] = [];
  // First closing tag / newline at or after the current content start. Content starts only move
  // forward, so each pointer is recomputed only once it falls behind: linear overall.
  let nextClose = -1;
  let nextNewline = -1;
  let from = 0;
  while (matches.length < limit) {
    const start = text.indexOf(open, from);
    if (start < 0) break;
    const contentStart = start + open.length;
    if (nextClose < contentStart) {
      nextClose = text.indexOf(close, contentStart);
      // No closing tag after this opening tag means none after any later one either.
      if (nextClose < 0) break;
    }
    if (!dotAll) {
      if (nextNewline !== Number.POSITIVE_INFINITY && nextNewline < contentStart) {
        const found = text.indexOf('\n', contentStart);
        nextNewline = found < 0 ? Number.POSITIVE_INFINITY : found;
      }
      if (nextNewline < nextClose) {
        // `.` cannot cross the newline; retry from the next opening tag.
        from = start + 1;
        continue;
      }
    }
    matches.push({ start, contentStart, contentEnd: nextClose, end: nextClose + close.length });
    from = nextClose + close.length;
  }
  return matches;
}

/**
 * Content of the first `<tag>...</tag>`, or undefined: Python's
 * `re.search(rf'<{tag}>(.*?)</{tag}>', text[, re.DOTALL]).group(1)`, as R1-V's `accuracy_reward` reads
 * `<answer>` from the completion and the solution.
 */
export function firstTagContent(
  text: string,
  tag: string,
  options: { dotAll?: boolean } = {},
): string | undefined {
  const [match] = findTags(text, tag, { ...options, limit: 1 });
  return match === undefined ? undefined : text.slice(match.contentStart, match.contentEnd);
}

/**
 * Content of the last `<tag>...</tag>`, or undefined: the last element of Python's
 * `re.findall(rf'<{tag}>(.*?)</{tag}>', text[, re.DOTALL])`.
 */
export function lastTagContent(
  text: string,
  tag: string,
  options: { dotAll?: boolean } = {},
): string | undefined {
  const matches = findTags(text, tag, options);
  const last = matches[matches.length - 1];
  return last === undefined ? undefined : text.slice(last.contentStart, last.contentEnd);
}

/**
 * The digits of the first `<answer>` holding only an integer, or undefined: Python's
 * `re.search(r'<answer>\s*(\d+)\s*</answer>', text).group(1)`, the answer extraction of R1-V's
 * SuperCLEVR counting evaluation (`src/eval/test_qwen2vl_counting_superclevr.py`). `\d` is any Unicode
 * decimal digit, as in Python; the digits come back as ASCII.
 */
export function integerAnswer(text: string): string | undefined {
  const open = '<answer>';
  const close = '</answer>';
  let start = text.indexOf(open);
  while (start >= 0) {
    // `\s*` and `\d+` match disjoint characters, so this is the regex's only way to match here; the
    // run ends at a `<`, so runs after different opening tags never overlap (linear overall).
    const { end, digits } = scanDecimalDigits(text, skipPyWhitespace(text, start + open.length));
    if (digits.length > 0 && text.startsWith(close, skipPyWhitespace(text, end))) return digits;
    start = text.indexOf(open, start + 1);
  }
  return undefined;
}
