// Qwen2VLProcessor: chat template + tokenizer + image processor, as HF's Qwen2VLProcessor.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessedImage, RgbImage } from '../schema.js';
import {
  type ChatMessage,
  ChatTemplate,
  loadChatTemplate,
  pickChatTemplate,
  type RenderOptions,
} from '../text/chat-template.js';
import { Qwen2Tokenizer, type TokenizerDecodeOptions } from '../text/tokenizer.js';
import { checkProcessedImage, type ImageProcessorLike, isProcessedImage } from './image-processor.js';
import { type AssistantSpanTokens, assistantLabels, assistantSpanTokens, IGNORE_INDEX } from './labels.js';

/** A prompt (or conversation) ready for the collators. */
export interface EncodedPrompt {
  /** Token ids with every `<|image_pad|>` expanded to its image's token count. */
  inputIds: Int32Array;
  /** The images, in the order of their pad runs in `inputIds`. */
  images: ProcessedImage[];
}

/** A conversation with its SFT labels (IGNORE_INDEX outside the assistant answers). */
export interface EncodedSft extends EncodedPrompt {
  labels: Int32Array;
}

export interface Qwen2VLProcessorOptions {
  tokenizer: Qwen2Tokenizer;
  /** Default: the tokenizer config's template, else the Qwen2-VL Instruct template. */
  chatTemplate?: ChatTemplate;
  /** Needed only for images given as pixels; processed images can always be passed. */
  imageProcessor?: ImageProcessorLike;
  /** Spatial merge size of the vision tower (2 for Qwen2-VL). */
  mergeSize?: number;
}

export class Qwen2VLProcessor {
  readonly tokenizer: Qwen2Tokenizer;
  readonly chatTemplate: ChatTemplate;
  readonly imageProcessor: ImageProcessorLike | undefined;
  readonly mergeSize: number;
  private readonly spanTokens: AssistantSpanTokens;

  constructor(options: Qwen2VLProcessorOptions) {
    this.tokenizer = options.tokenizer;
    const specials = {
      eos_token: this.tokenizer.eosToken,
      pad_token: this.tokenizer.padToken,
      bos_token: this.tokenizer.bosToken,
    };
    const source = pickChatTemplate(this.tokenizer.chatTemplate);
    this.chatTemplate =
      options.chatTemplate ??
      (source !== undefined ? new ChatTemplate(source, specials) : ChatTemplate.qwen2vl(specials));
    this.imageProcessor = options.imageProcessor;
    this.mergeSize = options.mergeSize ?? 2;
    this.spanTokens = assistantSpanTokens(this.tokenizer);
  }

  /**
   * Loads the tokenizer and chat template of a checkpoint folder. The image processor is the one
   * given, else the image module's `Qwen2VLImageProcessor.fromPretrained(dir)` when that module and
   * a preprocessor_config.json are there, else none (prompts with pixels then throw).
   */
  static async fromPretrained(
    dir: string,
    options: { imageProcessor?: ImageProcessorLike; chatTemplate?: ChatTemplate } = {},
  ): Promise<Qwen2VLProcessor> {
    const tokenizer = Qwen2Tokenizer.fromFile(dir);
    const specials = {
      eos_token: tokenizer.eosToken,
      pad_token: tokenizer.padToken,
      bos_token: tokenizer.bosToken,
    };
    const chatTemplate =
      options.chatTemplate ?? loadChatTemplate(dir, { specialTokens: specials, fallbackToQwen2VL: true });
    const imageProcessor = options.imageProcessor ?? (await defaultImageProcessor(dir));
    return new Qwen2VLProcessor({ tokenizer, chatTemplate, imageProcessor });
  }

  /** The chat template applied to `messages` (image slots left as one `<|image_pad|>` each). */
  applyChatTemplate(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    return this.chatTemplate.render(messages, options);
  }

  /** Runs the image processor on pixels; processed images pass through. */
  processImages(images: readonly (RgbImage | ProcessedImage)[]): ProcessedImage[] {
    return images.map((image, k) => {
      const processed = isProcessedImage(image) ? image : this.requireImageProcessor().process(image);
      checkProcessedImage(processed, `image ${k}`, this.mergeSize);
      return processed;
    });
  }

  /**
   * HF's text-level expansion: the k-th `<|image_pad|>` becomes `numImageTokens` of image k copies.
   * (`encode` does the same on ids, which is equivalent because the pad is a special token.)
   */
  expandImagePads(text: string, images: readonly ProcessedImage[]): string {
    const pad = '<|image_pad|>';
    const parts = text.split(pad);
    this.checkImageCount(parts.length - 1, images.length);
    let out = parts[0];
    for (let k = 0; k < images.length; k++) out += pad.repeat(images[k].numImageTokens) + parts[k + 1];
    return out;
  }

  /** Tokenizes a rendered prompt and expands each `<|image_pad|>` to its image's token count. */
  encode(text: string, images: readonly (RgbImage | ProcessedImage)[] = []): EncodedPrompt {
    const processed = this.processImages(images);
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    const { imagePadId, videoPadId } = this.tokenizer;
    let pads = 0;
    for (const id of ids) {
      if (id === imagePadId) pads++;
      else if (id === videoPadId) throw new Error('prompt has a <|video_pad|>: videos are not supported');
    }
    this.checkImageCount(pads, processed.length);
    const extra = processed.reduce((n, im) => n + im.numImageTokens - 1, 0);
    const inputIds = new Int32Array(ids.length + extra);
    let o = 0;
    let k = 0;
    for (const id of ids) {
      if (id === imagePadId) {
        inputIds.fill(imagePadId, o, o + processed[k].numImageTokens);
        o += processed[k++].numImageTokens;
      } else {
        inputIds[o++] = id;
      }
    }
    return { inputIds, images: processed };
  }

  /** A generation prompt: the template with `addGenerationPrompt` (default true), tokenized, images expanded. */
  encodeMessages(
    messages: readonly ChatMessage[],
    images: readonly (RgbImage | ProcessedImage)[] = [],
    options: RenderOptions = {},
  ): EncodedPrompt {
    return this.encode(this.applyChatTemplate(messages, { addGenerationPrompt: true, ...options }), images);
  }

  /**
   * A full conversation for SFT (rendered without a generation prompt) with labels on the assistant
   * answers and their `<|im_end|>` only; see `assistantLabels`.
   */
  encodeSft(
    messages: readonly ChatMessage[],
    images: readonly (RgbImage | ProcessedImage)[] = [],
    options: Omit<RenderOptions, 'addGenerationPrompt'> = {},
  ): EncodedSft {
    if (!messages.some((m) => m.role === 'assistant'))
      throw new Error('encodeSft: messages have no assistant turn to learn');
    const encoded = this.encode(
      this.applyChatTemplate(messages, { ...options, addGenerationPrompt: false }),
      images,
    );
    const labels = assistantLabels(encoded.inputIds, this.spanTokens);
    if (!labels.some((l) => l !== IGNORE_INDEX)) {
      throw new Error(
        'encodeSft: found no assistant answer in the rendered conversation (is the chat template Qwen-style?)',
      );
    }
    return { ...encoded, labels };
  }

  /** Text of generated ids; skips special tokens by default, as generation output is decoded. */
  decode(ids: ArrayLike<number>, options: TokenizerDecodeOptions = {}): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: true, ...options });
  }

  private requireImageProcessor(): ImageProcessorLike {
    if (!this.imageProcessor) {
      throw new Error(
        'Qwen2VLProcessor has no image processor: pass "imageProcessor", or pass processed images',
      );
    }
    return this.imageProcessor;
  }

  private checkImageCount(pads: number, images: number): void {
    if (pads !== images) {
      throw new Error(
        `prompt has ${pads} <|image_pad|> token${pads === 1 ? '' : 's'} but ${images} image${images === 1 ? ' was' : 's were'} given`,
      );
    }
  }
}

/** The image module's processor for `dir`, when the module and a preprocessor_config.json exist. */
async function defaultImageProcessor(dir: string): Promise<ImageProcessorLike | undefined> {
  if (!existsSync(join(dir, 'preprocessor_config.json'))) return undefined;
  const specifier = '../image/index.js'; // the image half of the package, loaded only when needed
  let mod: { Qwen2VLImageProcessor?: { fromPretrained?: (dir: string) => Promise<ImageProcessorLike> } };
  try {
    mod = await import(specifier);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
  return mod.Qwen2VLImageProcessor?.fromPretrained
    ? await mod.Qwen2VLImageProcessor.fromPretrained(dir)
    : undefined;
}
