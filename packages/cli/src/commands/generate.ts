// `othink generate <checkpoint> --prompt ... [--image path]`: one prompt (with an optional image)
// through the chat template, then greedy or sampled completions.
import { generate, modelInputs, tidy } from '@othink/core';
import {
  type ChatMessage,
  type ContentPart,
  collatePrompts,
  decodeImage,
  formatQuestion,
  type PromptPresetName,
  resolvePromptTemplate,
} from '@othink/data';
import { checkDevice } from '../config/checks.js';
import { resolveRunConfig } from '../config/resolve.js';
import { RunConfigSchema } from '../config/schema.js';
import { loadRunProcessor } from '../task/processor.js';
import { describeModel, loadInitialModel, loadModelFolder } from './model.js';

export interface GenerateOptions {
  /** A model folder, or `tiny` (random weights). */
  checkpoint: string;
  prompt: string;
  image?: string;
  /** A prompt preset whose `{Question}` takes the prompt (e.g. r1v-train); default: the prompt as is. */
  template?: PromptPresetName;
  maxNewTokens?: number;
  /** 0 (default): greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Completions to draw (sampling only makes them differ). */
  num?: number;
  device?: 'cpu' | 'cuda';
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export async function runGenerate(o: GenerateOptions): Promise<string[]> {
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  checkDevice(o.device ?? 'cpu', '--device');
  const tinyConfig =
    o.checkpoint === 'tiny'
      ? resolveRunConfig(
          RunConfigSchema.parse({ seed: o.seed ?? 42, model: { device: o.device ?? 'cpu' } }),
          1,
        )
      : undefined;
  const proc = await loadRunProcessor(o.checkpoint, tinyConfig?.model ?? {});
  const model = tinyConfig
    ? loadInitialModel(tinyConfig, proc.tokenizer)
    : loadModelFolder(o.checkpoint, proc.tokenizer, o.device ?? 'cpu');
  try {
    stderr.write(`model: ${describeModel(model, o.checkpoint)}\n`);
    const template = o.template ? resolvePromptTemplate(o.template) : undefined;
    const text: ContentPart = {
      type: 'text',
      text: template ? formatQuestion(template, o.prompt) : o.prompt,
    };
    const image: ContentPart = { type: 'image' };
    const after = template?.imagePosition === 'after';
    const content: ContentPart[] = o.image ? (after ? [text, image] : [image, text]) : [text];
    const messages: ChatMessage[] = [];
    if (template?.system !== undefined) messages.push({ role: 'system', content: template.system });
    messages.push({ role: 'user', content });
    const images = o.image ? [await decodeImage(o.image)] : [];
    const encoded = proc.processor.encodeMessages(messages, images);
    const n = o.num ?? 1;
    const batch = collatePrompts(new Array(n).fill(encoded), proc.tokenizer);
    const temperature = o.temperature ?? 0;
    const out = tidy(() =>
      generate(model, modelInputs(batch), {
        doSample: temperature > 0,
        temperature: temperature > 0 ? temperature : 1,
        topK: o.topK ?? 0,
        topP: o.topP ?? 1,
        maxNewTokens: o.maxNewTokens ?? 256,
        stopTokenIds: [...proc.tokenizer.stopTokenIds],
        padTokenId: proc.tokenizer.padTokenId,
        seed: o.seed ?? 0,
      }),
    );
    const texts: string[] = [];
    for (let r = 0; r < n; r++) {
      const ids: number[] = [];
      for (let t = 0; t < out.length && out.completionMask[r * out.length + t]; t++) {
        ids.push(out.completionIds[r * out.length + t]);
      }
      texts.push(proc.processor.decode(ids));
    }
    for (const [i, t] of texts.entries()) stdout.write(n > 1 ? `--- ${i + 1}\n${t}\n` : `${t}\n`);
    return texts;
  } finally {
    model.dispose();
  }
}
