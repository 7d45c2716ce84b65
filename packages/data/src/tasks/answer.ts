// The ground-truth answer string of a sample, extracted the way R1-V's accuracy reward does for its
// string fallback (paper-spec §3.2): `re.search(r'<answer>(.*?)</answer>', sol)` group 1, stripped;
// without tags, the whole solution stripped.
import type { R1VSample } from '../schema.js';

/** Python's `str.isspace()` for one character (what `str.strip()` removes). */
function isPySpace(c: string): boolean {
  const code = c.charCodeAt(0);
  return (
    (code >= 0x09 && code <= 0x0d) ||
    (code >= 0x1c && code <= 0x20) ||
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

/** Python's `s.strip()`. */
function pyStrip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isPySpace(s[start])) start++;
  while (end > start && isPySpace(s[end - 1])) end--;
  return s.slice(start, end);
}

/** `'3'` for `<answer> 3 </answer>`, `'70°'` for `<answer> 70° </answer>`. */
export function groundTruthAnswer(sample: R1VSample | string): string {
  const solution = typeof sample === 'string' ? sample : sample.solution;
  // Python's `.` without DOTALL matches everything but '\n'.
  const match = /<answer>([^\n]*?)<\/answer>/.exec(solution);
  return pyStrip(match ? match[1] : solution);
}
