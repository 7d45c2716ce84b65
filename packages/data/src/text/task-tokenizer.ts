// The small task tokenizer: a byte-level BPE trained on the counting / geometry task text, with the
// 14 Qwen2-VL special tokens right after its vocabulary. Tiny models train fast with it on CPU.
import { fileURLToPath } from 'node:url';
import { type BpeTokenizerJson, trainByteLevelBpe } from './bpe-trainer.js';
import { QWEN2VL_CHAT_TEMPLATE } from './chat-template.js';
import { taskCorpus } from './task-corpus.js';
import {
  QWEN2VL_SPECIAL_TOKENS,
  Qwen2Tokenizer,
  type TokenizerConfigJson,
  type TokenizerJson,
} from './tokenizer.js';

/** Upper bound on the BPE vocabulary (256 bytes + merges; merging stops earlier when no pair occurs twice). The 14 special tokens follow it. */
export const TASK_TOKENIZER_MAX_BPE_SIZE = 1024;

/** The committed files: `packages/data/assets/task-tokenizer/` (same depth from src/ and dist/). */
export function taskTokenizerDir(): string {
  return fileURLToPath(new URL('../../assets/task-tokenizer/', import.meta.url));
}

/** A Qwen2-VL-style tokenizer_config.json for a tokenizer whose special tokens are `added`. */
export function qwen2vlTokenizerConfig(added: TokenizerJson['added_tokens']): TokenizerConfigJson {
  return {
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(
      added.map((t) => [
        String(t.id),
        {
          content: t.content,
          lstrip: false,
          normalized: false,
          rstrip: false,
          single_word: false,
          special: true,
        },
      ]),
    ),
    additional_special_tokens: added.map((t) => t.content).filter((c) => c !== '<|endoftext|>'),
    bos_token: null,
    chat_template: QWEN2VL_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 32768,
    pad_token: '<|endoftext|>',
    padding_side: 'left',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

/** Builds the task tokenizer files from `taskCorpus()` (deterministic: same output every run). */
export function buildTaskTokenizerFiles(
  vocabSize = TASK_TOKENIZER_MAX_BPE_SIZE,
  corpus: Iterable<string> = taskCorpus(),
): { tokenizer: BpeTokenizerJson; config: TokenizerConfigJson } {
  const tokenizer = trainByteLevelBpe(corpus, { vocabSize, specialTokens: QWEN2VL_SPECIAL_TOKENS });
  return { tokenizer, config: qwen2vlTokenizerConfig(tokenizer.added_tokens) };
}

/**
 * JSON text as the repository's formatter (biome, line width 110) writes it: two-space indent, and
 * arrays of strings / numbers on one line when that line fits (the merges), so the committed files
 * pass `pnpm lint` unchanged.
 */
export function formatJsonFile(value: unknown): string {
  const json = JSON.stringify(value, null, 2);
  const scalar = String.raw`(?:"(?:[^"\\]|\\.)*"|-?[\d.eE+-]+|true|false|null)`;
  const array = new RegExp(String.raw`\[\n\s*(${scalar}(?:,\n\s*${scalar})*)\n\s*\]`, 'g');
  const text = json.replace(array, (all: string, items: string, offset: number) => {
    const collapsed = `[${items.split(/,\n\s*/).join(', ')}]`;
    const lineStart = json.lastIndexOf('\n', offset) + 1;
    const after = json[offset + all.length] === ',' ? 1 : 0;
    return offset - lineStart + collapsed.length + after <= 110 ? collapsed : all;
  });
  return `${text}\n`;
}

/** The committed task tokenizer (rebuild: `npx tsx packages/data/scripts/build-task-tokenizer.ts`). */
export function loadTaskTokenizer(): Qwen2Tokenizer {
  return Qwen2Tokenizer.fromFile(taskTokenizerDir());
}
