import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturePath, seededRandom } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  buildPromptMessages,
  buildTaskTokenizerFiles,
  byteLevelAlphabet,
  ChatTemplate,
  formatJsonFile,
  loadTaskTokenizer,
  PROMPT_PRESETS,
  type PromptPresetName,
  QWEN2VL_CHAT_TEMPLATE,
  QWEN2VL_SPECIAL_TOKENS,
  Qwen2Tokenizer,
  TASK_TOKENIZER_MAX_BPE_SIZE,
  taskTokenizerDir,
  trainByteLevelBpe,
} from '../src/text/index.js';

const qwenJson = JSON.parse(readFileSync(fixturePath('qwen2-tokenizer/tokenizer.json'), 'utf8'));
const task = loadTaskTokenizer();
const committed = JSON.parse(readFileSync(join(taskTokenizerDir(), 'tokenizer.json'), 'utf8'));
const committedConfig = JSON.parse(readFileSync(join(taskTokenizerDir(), 'tokenizer_config.json'), 'utf8'));

/** A random string of code points from several scripts (no lone surrogates: they are not text). */
function randomText(rand: () => number, length: number): string {
  const ranges: [number, number][] = [
    [0x20, 0x7e], // ASCII
    [0x09, 0x0d], // tab, newlines
    [0xa0, 0x24f], // Latin-1, Latin Extended
    [0x300, 0x36f], // combining marks (NFC recomposes some)
    [0x391, 0x3c9], // Greek
    [0x4e00, 0x4fff], // CJK
    [0xac00, 0xacff], // Hangul
    [0x2200, 0x22ff], // math operators (∠ ∥ ...)
    [0x1f300, 0x1f64f], // emoji
    [0x10000, 0x10ffff], // any astral code point
  ];
  let s = '';
  for (let i = 0; i < length; i++) {
    const [lo, hi] = ranges[Math.floor(rand() * ranges.length)];
    s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
  }
  return s;
}

describe('task tokenizer files', () => {
  it('are what the build script produces today (deterministic, up to date)', () => {
    const { tokenizer, config } = buildTaskTokenizerFiles();
    const dir = taskTokenizerDir();
    expect(formatJsonFile(tokenizer)).toBe(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    expect(formatJsonFile(config)).toBe(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    expect(JSON.parse(formatJsonFile(tokenizer))).toEqual(tokenizer);
    expect(formatJsonFile({ a: ['x', 'y'], b: [1, 2] })).toBe('{\n  "a": ["x", "y"],\n  "b": [1, 2]\n}\n');
  });

  it("use Qwen2's normalizer, pre-tokenizer, post-processor and decoder", () => {
    for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) {
      expect(committed[key], key).toEqual(qwenJson[key]);
    }
    const { model } = committed;
    const { vocab: _v, merges: _m, ...rest } = model;
    const { vocab: _qv, merges: _qm, ...qwenRest } = qwenJson.model;
    expect(rest).toEqual(qwenRest);
  });

  it("start with the 256 byte tokens in Qwen2's order, then merges, then the 14 specials in Qwen2-VL order", () => {
    const qwenInverse = new Map<number, string>(
      Object.entries(qwenJson.model.vocab as Record<string, number>).map(([t, i]) => [i, t]),
    );
    const taskInverse = new Map<number, string>(
      Object.entries(committed.model.vocab as Record<string, number>).map(([t, i]) => [i, t]),
    );
    for (let id = 0; id < 256; id++) expect(taskInverse.get(id)).toBe(qwenInverse.get(id));
    const n = taskInverse.size;
    expect(n).toBeGreaterThan(300);
    expect(n).toBeLessThanOrEqual(TASK_TOKENIZER_MAX_BPE_SIZE);
    expect(committed.model.merges.length).toBe(n - 256);
    expect(committed.added_tokens.map((t: { id: number; content: string }) => [t.id, t.content])).toEqual(
      QWEN2VL_SPECIAL_TOKENS.map((t, i) => [n + i, t]),
    );
    expect(task.vocabSize).toBe(n + 14);
    // every merge joins two known tokens into a known token
    for (const [a, b] of committed.model.merges as [string, string][]) {
      expect(
        committed.model.vocab[a] !== undefined &&
          committed.model.vocab[b] !== undefined &&
          committed.model.vocab[a + b] !== undefined,
      ).toBe(true);
    }
  });

  it('load through the facade as a Qwen2-VL tokenizer with the Qwen2-VL chat template', () => {
    expect(task).toBeInstanceOf(Qwen2Tokenizer);
    expect(task.chatTemplate).toBe(QWEN2VL_CHAT_TEMPLATE);
    expect(task.eosToken).toBe('<|im_end|>');
    expect(task.eosTokenId).toBe(task.imEndId);
    expect(task.padTokenId).toBe(task.endOfTextId);
    expect(task.paddingSide).toBe('left');
    expect(task.imagePadId).toBe(task.vocabSize - 2);
    for (const [i, t] of QWEN2VL_SPECIAL_TOKENS.entries()) {
      expect(task.encode(`ab${t}cd`)).toEqual([
        ...task.encode('ab'),
        task.vocabSize - 14 + i,
        ...task.encode('cd'),
      ]);
      expect(committedConfig.added_tokens_decoder[String(task.vocabSize - 14 + i)].content).toBe(t);
    }
  });
});

describe('task tokenizer behaviour', () => {
  it('round-trips random unicode exactly (up to NFC), with special tokens kept or skipped', () => {
    const rand = seededRandom(1234);
    for (let trial = 0; trial < 300; trial++) {
      const s = randomText(rand, 1 + Math.floor(rand() * 40));
      const ids = task.encode(s);
      expect(task.decode(ids), JSON.stringify(s)).toBe(s.normalize('NFC'));
      // The text between special tokens is normalized piece by piece (as in HF tokenizers).
      const nfc = s.normalize('NFC');
      const withSpecial = `${s}<|im_end|>${s}`;
      expect(task.decode(task.encode(withSpecial))).toBe(`${nfc}<|im_end|>${nfc}`);
      expect(task.decode(task.encode(withSpecial), { skipSpecialTokens: true })).toBe(nfc + nfc);
    }
  });

  it('falls back to byte tokens for text outside its corpus', () => {
    const ids = task.encode('猫が好き');
    expect(ids.length).toBe(new TextEncoder().encode('猫が好き').length);
    expect(ids.every((id) => id < 256)).toBe(true);
  });

  it('encodes the task prompts about as compactly as the 151k Qwen2 vocabulary', () => {
    const qwen = Qwen2Tokenizer.fromFile(fixturePath('qwen2-tokenizer'));
    const template = ChatTemplate.qwen2vl();
    const problems = [
      'How many items are there in the image?',
      'How many red cubes are there?',
      'In triangle ABC, angle A measures 20 degrees, what is the measure of angle CBD?',
    ];
    for (const preset of Object.keys(PROMPT_PRESETS) as PromptPresetName[]) {
      for (const problem of problems) {
        const text = template.render(buildPromptMessages(preset, { problem }), { addGenerationPrompt: true });
        const n = task.encode(text).length;
        const q = qwen.encode(text).length;
        expect(n, `${preset}: ${problem}`).toBeLessThanOrEqual(Math.ceil(q * 1.25));
      }
    }
    expect(task.encode('<answer> 70° </answer>').length).toBeLessThanOrEqual(
      qwen.encode('<answer> 70° </answer>').length + 2,
    );
  });
});

describe('trainByteLevelBpe', () => {
  const { byteToChar } = byteLevelAlphabet();
  const G = byteToChar[0x20]; // 'Ġ', the byte-level space

  it('merges the most frequent pair first, counting pairs per pre-token', () => {
    // pre-tokens: "ab", " ab", " ab", "abc" -> (a,b) x4, (Ġ,a) x2, (b,c) x1
    const json = trainByteLevelBpe(['ab ab ab', 'abc'], { vocabSize: 258, specialTokens: [] });
    expect(json.model.merges).toEqual([
      ['a', 'b'],
      [G, 'ab'],
    ]);
    expect(json.model.vocab.ab).toBe(256);
    expect(json.model.vocab[`${G}ab`]).toBe(257);
  });

  it("breaks ties by the pair's text, stops at minFrequency, and strips special tokens from the text", () => {
    const json = trainByteLevelBpe(['xy<|sep|>ba xy<|sep|>ba'], {
      vocabSize: 300,
      specialTokens: ['<|sep|>'],
    });
    // pre-tokens "xy", "ba", " xy", "ba": (b,a) x2 ties (x,y) x2; (Ġ,xy) x1 is below minFrequency 2.
    // The special token's text ("<|sep|>") contributes no pairs.
    expect(json.model.merges).toEqual([
      ['b', 'a'],
      ['x', 'y'],
    ]);
    expect(json.added_tokens).toEqual([
      {
        id: Object.keys(json.model.vocab).length,
        content: '<|sep|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      },
    ]);
    expect(() => trainByteLevelBpe([], { vocabSize: 255, specialTokens: [] })).toThrow(
      'vocabSize must be an integer >= 256',
    );
  });
});
