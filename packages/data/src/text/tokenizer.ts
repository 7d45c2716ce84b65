// A typed facade over @huggingface/tokenizers: under NodeNext its declarations resolve to `any`
// (extension-less relative imports in its .d.ts), so every call into it goes through this file.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

/** The parts of the library object this facade uses, with the types the library documents. */
interface HfTokenizerApi {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[]; tokens: string[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}

/** One entry of `added_tokens` in tokenizer.json. */
export interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
}

/** The fields of tokenizer.json read here; the rest is handed to the library as is. */
export interface TokenizerJson {
  model: { type: string; vocab: Record<string, number>; [key: string]: unknown };
  added_tokens: AddedTokenJson[];
  [key: string]: unknown;
}

/** The fields of tokenizer_config.json read here (HF `PreTrainedTokenizer` config). */
export interface TokenizerConfigJson {
  chat_template?: string | { name: string; template: string }[];
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  bos_token?: string | { content: string } | null;
  padding_side?: 'left' | 'right';
  model_max_length?: number;
  clean_up_tokenization_spaces?: boolean;
  [key: string]: unknown;
}

export interface TokenizerEncodeOptions {
  /** Let the post-processor add BOS / EOS (HF default true; Qwen2 adds none either way). */
  addSpecialTokens?: boolean;
}

export interface TokenizerDecodeOptions {
  /** Drop special tokens (`<|im_end|>`, `<|image_pad|>`, ...) from the text, as HF `skip_special_tokens`. */
  skipSpecialTokens?: boolean;
}

function tokenContent(token: TokenizerConfigJson['eos_token'], field: string): string | undefined {
  if (token === null || token === undefined) return undefined;
  if (typeof token === 'string') return token;
  if (typeof token === 'object' && typeof token.content === 'string') return token.content;
  throw new Error(
    `tokenizer_config.json: ${field} must be a string or {content}, got ${JSON.stringify(token)}`,
  );
}

function readJson<T>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * A tokenizer loaded from a `tokenizer.json` (+ optional `tokenizer_config.json`): encode, decode,
 * vocabulary look-ups. Added tokens marked special are matched whole in the input and never split.
 */
export class Tokenizer {
  /** Number of ids: the model vocabulary plus the added tokens (ids are dense `0..vocabSize-1`). */
  readonly vocabSize: number;
  /** Special added tokens, content -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly bosToken: string | undefined;
  readonly paddingSide: 'left' | 'right';
  readonly modelMaxLength: number | undefined;
  /** The raw chat template(s) from tokenizer_config.json, if any (see `loadChatTemplate`). */
  readonly chatTemplate: TokenizerConfigJson['chat_template'];

  private readonly hf: HfTokenizerApi;
  private readonly specialIds: Set<number>;

  constructor(
    readonly json: TokenizerJson,
    readonly config: TokenizerConfigJson = {},
  ) {
    if (!json || typeof json !== 'object' || !json.model || typeof json.model.vocab !== 'object') {
      throw new Error('tokenizer.json: missing "model.vocab"');
    }
    if (!Array.isArray(json.added_tokens)) throw new Error('tokenizer.json: "added_tokens" must be an array');
    this.hf = new HfTokenizer(json, config) as HfTokenizerApi;

    const special = new Map<string, number>();
    let maxId = -1;
    for (const id of Object.values(json.model.vocab)) maxId = Math.max(maxId, id);
    for (const t of json.added_tokens) {
      maxId = Math.max(maxId, t.id);
      if (t.special) special.set(t.content, t.id);
    }
    this.vocabSize = maxId + 1;
    for (let id = 0; id < this.vocabSize; id++) {
      if (this.hf.id_to_token(id) === undefined) {
        throw new Error(`tokenizer.json: id ${id} has no token (ids must be dense 0..${maxId})`);
      }
    }
    this.specialTokens = special;
    this.specialIds = new Set(special.values());
    this.eosToken = tokenContent(config.eos_token, 'eos_token');
    this.padToken = tokenContent(config.pad_token, 'pad_token');
    this.bosToken = tokenContent(config.bos_token, 'bos_token');
    this.paddingSide = config.padding_side ?? 'right';
    this.modelMaxLength = config.model_max_length;
    this.chatTemplate = config.chat_template;
  }

  /**
   * Loads `tokenizer.json` and, when present, `tokenizer_config.json` from a checkpoint folder
   * (or from the folder of a `tokenizer.json` path).
   */
  static fromFile(path: string): Tokenizer {
    const { json, config } = readTokenizerFiles(path);
    return new Tokenizer(json, config);
  }

  /** Token ids of `text`. */
  encode(text: string, options: TokenizerEncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Token ids and their byte-level token strings (e.g. `Ġare`). */
  encodeWithTokens(text: string, options: TokenizerEncodeOptions = {}): { ids: number[]; tokens: string[] } {
    const { ids, tokens } = this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true });
    return { ids, tokens };
  }

  /** Text of `ids`; throws on an id outside the vocabulary, naming its position. */
  decode(ids: ArrayLike<number>, options: TokenizerDecodeOptions = {}): string {
    const list = Array.from(ids);
    for (let i = 0; i < list.length; i++) {
      const id = list[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(
          `decode: token id ${id} at position ${i} is outside the vocabulary (0..${this.vocabSize - 1})`,
        );
      }
    }
    if (list.length === 0) return '';
    return this.hf.decode(list, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Id of a token string (byte-level form, or the content of an added token). */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Id of a token that must exist; the error names the token. */
  requireTokenId(token: string): number {
    const id = this.hf.token_to_id(token);
    if (id === undefined) throw new Error(`tokenizer has no token ${JSON.stringify(token)}`);
    return id;
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  get eosTokenId(): number | undefined {
    return this.eosToken === undefined ? undefined : this.tokenToId(this.eosToken);
  }

  get padTokenId(): number | undefined {
    return this.padToken === undefined ? undefined : this.tokenToId(this.padToken);
  }
}

/** Reads tokenizer.json and the optional tokenizer_config.json beside it. */
export function readTokenizerFiles(path: string): {
  json: TokenizerJson;
  config: TokenizerConfigJson;
  dir: string;
} {
  if (!existsSync(path)) throw new Error(`tokenizer path ${path} does not exist`);
  const isDir = statSync(path).isDirectory();
  const dir = isDir ? path : join(path, '..');
  const jsonPath = isDir ? join(path, 'tokenizer.json') : path;
  if (!existsSync(jsonPath)) throw new Error(`${dir} has no tokenizer.json`);
  const json = readJson<TokenizerJson>(jsonPath);
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson<TokenizerConfigJson>(configPath) : {};
  return { json, config, dir };
}

/** The 14 Qwen2-VL special tokens in id order (qwen2vl-spec §6.2: ids 151643..151656). */
export const QWEN2VL_SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;

export type Qwen2VLSpecialToken = (typeof QWEN2VL_SPECIAL_TOKENS)[number];

/**
 * A tokenizer with the Qwen2-VL special tokens: the real 151,657-id Qwen2 vocabulary or the small
 * task tokenizer. Exposes the ids the processor, collators and generation need.
 */
export class Qwen2Tokenizer extends Tokenizer {
  readonly endOfTextId: number;
  readonly imStartId: number;
  readonly imEndId: number;
  readonly visionStartId: number;
  readonly visionEndId: number;
  readonly imagePadId: number;
  readonly videoPadId: number;
  /** Generation stops on either (qwen2vl-spec §6.3). */
  readonly stopTokenIds: readonly number[];

  constructor(json: TokenizerJson, config: TokenizerConfigJson = {}) {
    super(json, config);
    const missing = QWEN2VL_SPECIAL_TOKENS.filter((t) => !this.specialTokens.has(t));
    if (missing.length > 0) {
      throw new Error(
        `not a Qwen2-VL tokenizer: special token(s) ${missing.join(', ')} missing from added_tokens`,
      );
    }
    const id = (t: Qwen2VLSpecialToken) => this.specialTokens.get(t)!;
    this.endOfTextId = id('<|endoftext|>');
    this.imStartId = id('<|im_start|>');
    this.imEndId = id('<|im_end|>');
    this.visionStartId = id('<|vision_start|>');
    this.visionEndId = id('<|vision_end|>');
    this.imagePadId = id('<|image_pad|>');
    this.videoPadId = id('<|video_pad|>');
    this.stopTokenIds = [this.imEndId, this.endOfTextId];
  }

  static override fromFile(path: string): Qwen2Tokenizer {
    const { json, config } = readTokenizerFiles(path);
    return new Qwen2Tokenizer(json, config);
  }

  /** Pad id: the config's pad_token, else `<|endoftext|>` (Qwen2-VL's pad_token). */
  override get padTokenId(): number {
    return super.padTokenId ?? this.endOfTextId;
  }

  /** EOS id: the config's eos_token, else `<|im_end|>` (Qwen2-VL Instruct's eos_token). */
  override get eosTokenId(): number {
    return super.eosTokenId ?? this.imEndId;
  }
}
