// A deterministic byte-level BPE trainer that writes a tokenizer.json with Qwen2's normalizer,
// pre-tokenizer and decoder, so any text round-trips through the 256 byte tokens.
import type { AddedTokenJson, TokenizerJson } from './tokenizer.js';

/** Qwen2's split regex as stored in its tokenizer.json (qwen2vl-spec §6.2). */
export const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The same regex in JavaScript syntax (no inline `(?i:)` groups); used only to gather training statistics. */
const SPLIT =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

const BYTE_LEVEL = {
  type: 'ByteLevel',
  add_prefix_space: false,
  trim_offsets: false,
  use_regex: false,
} as const;

/**
 * GPT-2's byte -> printable character map (`bytes_to_unicode`), in its own order: the printable
 * bytes first, then the rest shifted to U+0100.. . Byte-level vocabularies list their 256 base
 * tokens in this order (Qwen2's ids 0..255).
 */
export function byteLevelAlphabet(): { byteToChar: string[]; order: number[] } {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const byteToChar: string[] = new Array(256);
  const order = [...printable];
  for (const b of printable) byteToChar[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (byteToChar[b] === undefined) {
      byteToChar[b] = String.fromCharCode(256 + n++);
      order.push(b);
    }
  }
  return { byteToChar, order };
}

/** A byte-level BPE tokenizer.json as the trainer writes it. */
export interface BpeTokenizerJson extends TokenizerJson {
  model: TokenizerJson['model'] & { merges: [string, string][] };
}

export interface BpeTrainOptions {
  /** Size of the BPE vocabulary (256 byte tokens + merges), special tokens not counted. */
  vocabSize: number;
  /** Stop merging when the most frequent pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  /** Added special tokens, given ids right after the vocabulary in this order; stripped from the training text. */
  specialTokens: readonly string[];
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Trains merges on `texts` and returns a complete tokenizer.json object.
 * Determinism: each step merges the most frequent adjacent pair; ties go to the pair whose
 * `left + "\0" + right` sorts first (UTF-16 order). Same texts and options give the same file.
 */
export function trainByteLevelBpe(texts: Iterable<string>, options: BpeTrainOptions): BpeTokenizerJson {
  const { vocabSize, minFrequency = 2, specialTokens } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < 256) {
    throw new Error(`vocabSize must be an integer >= 256 (the byte tokens), got ${vocabSize}`);
  }
  const { byteToChar, order } = byteLevelAlphabet();
  const encoder = new TextEncoder();

  // Word (pre-token in byte-level characters) -> count.
  const wordCounts = new Map<string, number>();
  const specialSplit =
    specialTokens.length > 0 ? new RegExp(specialTokens.map(escapeRegex).join('|'), 'g') : undefined;
  for (const text of texts) {
    const sections = specialSplit ? text.split(specialSplit) : [text];
    for (const section of sections) {
      for (const match of section.normalize('NFC').matchAll(SPLIT)) {
        let word = '';
        for (const b of encoder.encode(match[0])) word += byteToChar[b];
        wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
      }
    }
  }

  const vocab = new Map<string, number>();
  for (const b of order) vocab.set(byteToChar[b], vocab.size);
  const words = [...wordCounts.entries()].map(([w, count]) => ({ symbols: Array.from(w), count }));
  const merges: [string, string][] = [];

  while (vocab.size < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + '\0' + symbols[i + 1];
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let bestKey: string | undefined;
    let bestCount = 0;
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && bestKey !== undefined && key < bestKey)) {
        bestKey = key;
        bestCount = count;
      }
    }
    if (bestKey === undefined || bestCount < minFrequency) break;
    const [left, right] = bestKey.split('\0') as [string, string];
    const merged = left + right;
    merges.push([left, right]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const word of words) {
      const s = word.symbols;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === left && s[i + 1] === right) s.splice(i, 2, merged);
      }
    }
  }

  const addedTokens: AddedTokenJson[] = specialTokens.map((content, i) => ({
    id: vocab.size + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        { ...BYTE_LEVEL },
      ],
    },
    post_processor: { ...BYTE_LEVEL },
    decoder: { ...BYTE_LEVEL },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges,
    },
  };
}
