// The trainers' view of the data (TrainDataAdapter of @othink/core). Samples are prepared once up
// front: the image decoded and resized (Pillow-exact bicubic, as the processor does) and kept as
// uint8 RGB, the prompt and the SFT conversation tokenized. A batch then only normalises and
// patchifies its images, so the adapter's methods are synchronous and cheap, and memory stays at
// one resized RGB image per sample (tiny model: 112 x 84 x 3 B = 28 KB) rather than its float32
// patches (8x more).
import {
  buildPromptMessages,
  buildSftMessages,
  type ChatMessage,
  collatePrompts,
  collateSft,
  loadSampleImage,
  type PromptBatch,
  type PromptPresetName,
  type PromptTemplate,
  type Qwen2VLImageProcessor,
  type Qwen2VLProcessor,
  type R1VSample,
  type RgbImage,
  resizeBicubic,
  type SftBatch,
} from '@othink/data';
import type { PromptSpec } from '../config/schema.js';

export interface EncodeOptions {
  /** Prompt of generation (GRPO rollouts, evaluation). */
  prompt: PromptSpec;
  /** Prompt of SFT conversations; omit to skip SFT encoding. */
  sftPrompt?: PromptSpec;
  /** Left truncation of prompts (TRL max_prompt_length). */
  maxPromptLength?: number;
  /** Right truncation of SFT sequences. */
  maxLength?: number;
  /** Images decoded at once. */
  concurrency?: number;
  /** Called after each sample (progress of a long encode). */
  onProgress?: (done: number, total: number) => void;
}

interface Entry {
  /** Resized to the processor's size (null: the prompt has no image). */
  image: RgbImage | null;
  promptIds: Int32Array;
  promptText: string;
  sftIds?: Int32Array;
  sftLabels?: Int32Array;
}

/** A prompt preset name or template, as @othink/data takes it. */
function template(p: PromptSpec): PromptPresetName | PromptTemplate {
  return p;
}

function hasImage(messages: ChatMessage[]): boolean {
  return messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p.type === 'image'));
}

/** Encoded samples behind the TrainDataAdapter interface. */
export class EncodedTaskData {
  readonly stopTokenIds: number[];
  readonly padTokenId: number;
  private readonly entries = new Map<R1VSample, Entry>();

  private constructor(
    readonly processor: Qwen2VLProcessor,
    private readonly imageProcessor: Qwen2VLImageProcessor,
    readonly samples: R1VSample[],
    private readonly options: EncodeOptions,
  ) {
    this.stopTokenIds = [...processor.tokenizer.stopTokenIds];
    this.padTokenId = processor.tokenizer.padTokenId;
  }

  /** Decodes and resizes every image, and tokenizes the prompts (and SFT conversations). */
  static async create(
    processor: Qwen2VLProcessor,
    imageProcessor: Qwen2VLImageProcessor,
    samples: R1VSample[],
    options: EncodeOptions,
  ): Promise<EncodedTaskData> {
    const data = new EncodedTaskData(processor, imageProcessor, samples, options);
    const concurrency = options.concurrency ?? 8;
    let done = 0;
    for (let start = 0; start < samples.length; start += concurrency) {
      const chunk = samples.slice(start, start + concurrency);
      const images = await Promise.all(chunk.map((s) => loadSampleImage(s)));
      chunk.forEach((sample, k) => {
        data.add(sample, images[k], start + k);
        options.onProgress?.(++done, samples.length);
      });
    }
    return data;
  }

  private add(sample: R1VSample, decoded: RgbImage, index: number): void {
    const where = `sample ${index} ("${String(sample.problem).slice(0, 60)}")`;
    try {
      const [h, w] = this.imageProcessor.resizedSize(decoded.height, decoded.width);
      const image = h === decoded.height && w === decoded.width ? decoded : resizeBicubic(decoded, w, h);
      const messages = buildPromptMessages(template(this.options.prompt), sample);
      const withImage = hasImage(messages);
      const processed = this.processor.processImages([image]);
      const prompt = this.processor.encodeMessages(messages, withImage ? processed : []);
      const entry: Entry = {
        image: withImage ? image : null,
        promptIds: prompt.inputIds,
        promptText: this.processor.applyChatTemplate(messages, { addGenerationPrompt: true }),
      };
      if (this.options.sftPrompt !== undefined) {
        const sft = buildSftMessages(template(this.options.sftPrompt), sample);
        if (hasImage(sft) !== withImage) {
          throw new Error('the SFT prompt and the generation prompt must both show the image or both not');
        }
        const encoded = this.processor.encodeSft(sft, withImage ? processed : []);
        entry.sftIds = encoded.inputIds;
        entry.sftLabels = encoded.labels;
      }
      this.entries.set(sample, entry);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  }

  private entry(sample: R1VSample, what: string): Entry {
    const e = this.entries.get(sample);
    if (e === undefined)
      throw new Error(`${what}: a sample that was not encoded (not one of this dataset's samples)`);
    return e;
  }

  private images(e: Entry) {
    return e.image ? this.processor.processImages([e.image]) : [];
  }

  /** Left-padded prompts with their images. */
  encodePrompts(samples: R1VSample[]): PromptBatch {
    const items = samples.map((s) => {
      const e = this.entry(s, 'encodePrompts');
      return { inputIds: e.promptIds, images: this.images(e) };
    });
    const max = this.options.maxPromptLength;
    return collatePrompts(items, this.processor.tokenizer, max !== undefined ? { maxPromptLength: max } : {});
  }

  /** Full conversations with labels on the answers (right-padded). */
  encodeSft(samples: R1VSample[]): SftBatch {
    const items = samples.map((s) => {
      const e = this.entry(s, 'encodeSft');
      if (!e.sftIds || !e.sftLabels)
        throw new Error('encodeSft: the samples were encoded without an SFT prompt');
      return { inputIds: e.sftIds, labels: e.sftLabels, images: this.images(e) };
    });
    const max = this.options.maxLength;
    return collateSft(items, this.processor.tokenizer, max !== undefined ? { maxLength: max } : {});
  }

  /** Completion text: special tokens skipped, as R1-V decodes completions (§8.8). */
  decode(ids: ArrayLike<number>): string {
    return this.processor.decode(ids);
  }

  /** The rendered prompt (chat template with generation prompt; the image as one pad). */
  promptText(sample: R1VSample): string {
    return this.entry(sample, 'promptText').promptText;
  }

  /** Tokens of the longest prompt and of the longest SFT sequence (for logs and length checks). */
  lengths(): { maxPrompt: number; maxSft: number; imageTokens: number } {
    let maxPrompt = 0;
    let maxSft = 0;
    let imageTokens = 0;
    const pad = this.processor.tokenizer.imagePadId;
    for (const e of this.entries.values()) {
      maxPrompt = Math.max(maxPrompt, e.promptIds.length);
      maxSft = Math.max(maxSft, e.sftIds?.length ?? 0);
      let n = 0;
      for (const id of e.promptIds) if (id === pad) n++;
      imageTokens = Math.max(imageTokens, n);
    }
    return { maxPrompt, maxSft, imageTokens };
  }
}
