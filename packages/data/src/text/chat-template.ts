// Chat templates from a checkpoint (chat_template.jinja / chat_template.json / tokenizer_config.json),
// rendered with @huggingface/jinja the way transformers' apply_chat_template does.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import type { TokenizerConfigJson } from './tokenizer.js';

/** An image slot in a message; the pixels travel separately, in the same order (HF convention). */
export interface ImagePart {
  type: 'image';
  /** Optional reference (path, URL) kept for the caller; the template ignores it. */
  image?: string;
}

export interface VideoPart {
  type: 'video';
}

export interface TextPart {
  type: 'text';
  text: string;
}

export type ContentPart = ImagePart | VideoPart | TextPart;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string | ContentPart[];
}

export interface RenderOptions {
  /** Append the assistant header (`<|im_start|>assistant\n` for Qwen2-VL) so the model answers next. */
  addGenerationPrompt?: boolean;
  /** Qwen2-VL: prefix each image with `Picture k: ` (and videos with `Video k: `). */
  addVisionId?: boolean;
  /** Further template variables, passed through unchanged. */
  extra?: Record<string, unknown>;
}

/**
 * The Qwen2-VL-2B-Instruct chat template, verbatim (qwen2vl-spec §6.1; same string in its
 * tokenizer_config.json and chat_template.json). Used when a checkpoint ships no template.
 */
export const QWEN2VL_CHAT_TEMPLATE =
  "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/** A parsed Jinja chat template; parse once, render many times. */
export class ChatTemplate {
  private readonly template: Template;

  /**
   * @param source the Jinja source
   * @param specialTokens `bos_token`, `eos_token`, ... made available to the template, as transformers does
   */
  constructor(
    readonly source: string,
    private readonly specialTokens: Record<string, string | undefined> = {},
  ) {
    if (typeof source !== 'string' || source.length === 0)
      throw new Error('chat template must be a non-empty string');
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new Error(`chat template does not parse: ${(err as Error).message}`);
    }
  }

  /** The Qwen2-VL Instruct template. */
  static qwen2vl(specialTokens: Record<string, string | undefined> = {}): ChatTemplate {
    return new ChatTemplate(QWEN2VL_CHAT_TEMPLATE, specialTokens);
  }

  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    validateMessages(messages);
    return this.template.render({
      ...this.specialTokens,
      ...options.extra,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      add_vision_id: options.addVisionId ?? false,
    });
  }
}

function validateMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new Error('messages must be an array');
  messages.forEach((m, i) => {
    if (!m || typeof m.role !== 'string') throw new Error(`messages[${i}].role must be a string`);
    const content: unknown = m.content;
    if (typeof content === 'string') return;
    if (!Array.isArray(content))
      throw new Error(`messages[${i}].content must be a string or an array of parts`);
    (content as ContentPart[]).forEach((part, j) => {
      if (part.type === 'text' && typeof part.text !== 'string') {
        throw new Error(`messages[${i}].content[${j}].text must be a string`);
      }
      if (part.type !== 'text' && part.type !== 'image' && part.type !== 'video') {
        throw new Error(
          `messages[${i}].content[${j}].type ${JSON.stringify((part as { type: unknown }).type)} is not text, image or video`,
        );
      }
    });
  });
}

/** Picks the template from a tokenizer_config `chat_template` (a string, or a list of named ones). */
export function pickChatTemplate(
  value: TokenizerConfigJson['chat_template'],
  name = 'default',
): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const found = value.find((t) => t.name === name);
    if (!found) {
      throw new Error(
        `no chat template named ${JSON.stringify(name)}; have ${value.map((t) => t.name).join(', ')}`,
      );
    }
    return found.template;
  }
  throw new Error('chat_template must be a string or a list of {name, template}');
}

/**
 * The checkpoint's chat template source, in transformers' order of precedence for processors:
 * `chat_template.jinja`, then `chat_template.json` (`{"chat_template": ...}`), then the
 * `chat_template` of `tokenizer_config.json`. Undefined when none of them has one.
 */
export function readChatTemplateSource(dir: string, name = 'default'): string | undefined {
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaPath)) return readFileSync(jinjaPath, 'utf8');
  for (const file of ['chat_template.json', 'tokenizer_config.json']) {
    const path = join(dir, file);
    if (!existsSync(path)) continue;
    let json: TokenizerConfigJson;
    try {
      json = JSON.parse(readFileSync(path, 'utf8')) as TokenizerConfigJson;
    } catch (err) {
      throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
    }
    const source = pickChatTemplate(json.chat_template, name);
    if (source !== undefined) return source;
  }
  return undefined;
}

/**
 * Loads the chat template of a checkpoint folder (see `readChatTemplateSource`); falls back to the
 * Qwen2-VL template when `fallbackToQwen2VL` is set, otherwise throws naming the files looked at.
 */
export function loadChatTemplate(
  dir: string,
  options: {
    specialTokens?: Record<string, string | undefined>;
    fallbackToQwen2VL?: boolean;
    name?: string;
  } = {},
): ChatTemplate {
  const source = readChatTemplateSource(dir, options.name);
  if (source !== undefined) return new ChatTemplate(source, options.specialTokens);
  if (options.fallbackToQwen2VL) return ChatTemplate.qwen2vl(options.specialTokens);
  throw new Error(
    `${dir}: no chat template (looked in chat_template.jinja, chat_template.json, tokenizer_config.json)`,
  );
}
