// Python `str` semantics the R1-V rewards rely on: `\s` / `str.isspace`, `str.strip`, and `\d` / `int()`
// on Unicode decimal digits. JavaScript's `\s` and `trim()` differ (they include U+FEFF and exclude
// U+001C..U+001F and U+0085), so the rewards use these instead.

/**
 * Whether a UTF-16 code unit is whitespace for Python's `str.isspace()` and `re`'s `\s` on str patterns
 * (checked against CPython 3.11 over all code points). All of them are in the BMP.
 */
export function isPyWhitespace(code: number): boolean {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d) || (code >= 0x1c && code <= 0x1f);
  if (code < 0x85) return false;
  return (
    code === 0x85 ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000
  );
}

/** Python's `text.strip()`: removes leading and trailing `str.isspace()` characters. */
export function pyStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isPyWhitespace(text.charCodeAt(start))) start++;
  while (end > start && isPyWhitespace(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/** Index of the first non-whitespace code unit at or after `from` (Python `\s*`). */
export function skipPyWhitespace(text: string, from: number): number {
  let i = from;
  while (i < text.length && isPyWhitespace(text.charCodeAt(i))) i++;
  return i;
}

const DECIMAL_DIGIT = /^\p{Nd}$/u;

/**
 * The value 0..9 of a Unicode decimal digit (general category Nd, what Python's `\d` matches and `int()`
 * reads), or -1. Unicode encodes every Nd digit in contiguous runs 0..9, so the value is the offset from
 * the start of the contiguous Nd block, modulo 10.
 */
export function decimalDigitValue(codePoint: number): number {
  if (codePoint >= 0x30 && codePoint <= 0x39) return codePoint - 0x30;
  if (codePoint < 0x660 || !DECIMAL_DIGIT.test(String.fromCodePoint(codePoint))) return -1;
  let start = codePoint;
  while (start > 0 && DECIMAL_DIGIT.test(String.fromCodePoint(start - 1))) start--;
  return (codePoint - start) % 10;
}

/**
 * The run of Unicode decimal digits (Python `\d+`) starting at `from`: where it ends and its digits in
 * ASCII. ASCII runs are sliced, not rebuilt, so a megabyte of digits costs one pass.
 */
export function scanDecimalDigits(text: string, from: number): { end: number; digits: string } {
  let i = from;
  let ascii = true;
  for (;;) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x30 && unit <= 0x39) {
      i++;
      continue;
    }
    if (Number.isNaN(unit) || unit < 0x660) break;
    const code = text.codePointAt(i)!;
    if (decimalDigitValue(code) < 0) break;
    ascii = false;
    i += code > 0xffff ? 2 : 1;
  }
  const run = text.slice(from, i);
  if (ascii) return { end: i, digits: run };
  let digits = '';
  for (const char of run) digits += String.fromCharCode(0x30 + decimalDigitValue(char.codePointAt(0)!));
  return { end: i, digits };
}
