import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX, Qwen2VLProcessor } from '../src/processor/index.js';
import {
  buildPromptMessages,
  buildSftMessages,
  type ChatMessage,
  loadTaskTokenizer,
  Qwen2Tokenizer,
} from '../src/text/index.js';
import { FakeImageProcessor, image, processed } from './fake-image-processor.js';

interface Case {
  id: string;
  kind: string;
  messages?: ChatMessage[];
  add_generation_prompt?: boolean;
  add_vision_id?: boolean;
  from_case?: number;
  image_pad_copies?: number;
  text: string;
  ids: number[];
}

const cases: Case[] = JSON.parse(readFileSync(fixturePath('qwen2-tokenizer/cases.json'), 'utf8')).cases;
const byId = (id: string) => cases.find((c) => c.id === id)!;
const qwen = Qwen2Tokenizer.fromFile(fixturePath('qwen2-tokenizer'));
const IMAGE_PAD = 151655;

/** The fixture's ids with the k-th <|image_pad|> replaced by counts[k] copies (qwen2vl-spec §5.5). */
function expandIds(ids: number[], counts: number[]): number[] {
  let k = 0;
  return ids.flatMap((id) => (id === IMAGE_PAD ? new Array(counts[k++]).fill(IMAGE_PAD) : [id]));
}

describe('Qwen2VLProcessor prompts', () => {
  const fake = new FakeImageProcessor();
  const processor = new Qwen2VLProcessor({ tokenizer: qwen, imageProcessor: fake });

  it.each(cases.filter((c) => c.kind === 'chat-expanded').map((c) => [c.id, c] as const))(
    '%s: the expanded prompt equals the fixture (text and ids)',
    (_id, c) => {
      const source = cases[c.from_case!];
      const n = c.image_pad_copies!;
      // an image of n tokens: 28 x (28 n) pixels
      const img = image(28 * n, 28, 5);
      const encoded = processor.encodeMessages(source.messages!, [img], {
        addGenerationPrompt: source.add_generation_prompt,
      });
      expect(Array.from(encoded.inputIds)).toEqual(c.ids);
      expect(encoded.images[0].numImageTokens).toBe(n);
      expect(processor.expandImagePads(source.text, encoded.images)).toBe(c.text);
    },
  );

  it('expands several images in order (fixture p03: three images, vision ids)', () => {
    const p03 = byId('p03');
    const imgs = [image(28, 28, 1), image(56, 56, 2), image(84, 28, 3)]; // 1, 4 and 3 tokens
    const encoded = processor.encodeMessages(p03.messages!, imgs, { addVisionId: true });
    expect(Array.from(encoded.inputIds)).toEqual(expandIds(p03.ids, [1, 4, 3]));
    expect(encoded.images.map((im) => im.gridThw)).toEqual([
      [1, 2, 2],
      [1, 4, 4],
      [1, 2, 6],
    ]);
    expect(encoded.images.map((im) => im.pixelValues[0])).toEqual([1, 2, 3]);
  });

  it('renders the R1-V training prompt and tokenizes it like the tokenizer on the HF-expanded text', () => {
    const messages = buildPromptMessages('r1v-train', { problem: 'How many items are there in the image?' });
    const encoded = processor.encodeMessages(messages, [processed(64, 0)]);
    const text = processor.expandImagePads(
      processor.applyChatTemplate(messages, { addGenerationPrompt: true }),
      encoded.images,
    );
    expect(Array.from(encoded.inputIds)).toEqual(qwen.encode(text));
    expect(encoded.inputIds.filter((id) => id === IMAGE_PAD).length).toBe(64);
    expect(Array.from(encoded.inputIds.subarray(-5))).toEqual([151645, 198, 151644, 77091, 198]); // spec §6.1 suffix
  });

  it('takes processed images as they are, without calling the image processor', () => {
    const before = fake.calls;
    const p = processed(3, 9);
    const encoded = processor.encode('<|vision_start|><|image_pad|><|vision_end|>hi', [p]);
    expect(fake.calls).toBe(before);
    expect(encoded.images[0]).toBe(p);
    expect(Array.from(encoded.inputIds)).toEqual([
      151652,
      IMAGE_PAD,
      IMAGE_PAD,
      IMAGE_PAD,
      151653,
      ...qwen.encode('hi'),
    ]);
  });

  it('names what does not fit', () => {
    const pad = '<|vision_start|><|image_pad|><|vision_end|>';
    expect(() => processor.encode(pad + pad, [processed(1, 0)])).toThrow(
      'prompt has 2 <|image_pad|> tokens but 1 image was given',
    );
    expect(() => processor.encode('no image', [processed(1, 0)])).toThrow(
      'prompt has 0 <|image_pad|> tokens but 1 image was given',
    );
    expect(() => processor.expandImagePads(pad, [])).toThrow(
      'prompt has 1 <|image_pad|> token but 0 images were given',
    );
    expect(() => processor.encode('<|video_pad|>')).toThrow('videos are not supported');
    const bad = { ...processed(2, 0), numImageTokens: 3 };
    expect(() => processor.encode(pad, [bad])).toThrow(
      'image 0: numImageTokens 3 != t*h*w / merge^2 = 1*2*4 / 2^2',
    );
    const noImages = new Qwen2VLProcessor({ tokenizer: qwen });
    expect(() => noImages.encode(pad, [image(28, 28, 0)])).toThrow('Qwen2VLProcessor has no image processor');
  });

  it('decodes generated ids without special tokens by default', () => {
    const ids = [...qwen.encode('<think> 2 </think><answer>2</answer>'), 151645];
    expect(processor.decode(ids)).toBe('<think> 2 </think><answer>2</answer>');
    expect(processor.decode(ids, { skipSpecialTokens: false })).toBe(
      '<think> 2 </think><answer>2</answer><|im_end|>',
    );
  });
});

describe('Qwen2VLProcessor SFT labels', () => {
  const processor = new Qwen2VLProcessor({ tokenizer: qwen, imageProcessor: new FakeImageProcessor() });
  const sample = {
    problem: 'How many cubes?',
    thinking: '<think> 1, 2, 3. </think>',
    solution: '<answer> 3 </answer>',
  };

  it('train on the answer and its <|im_end|> only (R1-V SFT messages with an image)', () => {
    const messages = buildSftMessages('r1v-sft', sample);
    const { inputIds, labels, images } = processor.encodeSft(messages, [image(56, 28, 1)]);
    expect(images[0].numImageTokens).toBe(2);
    const target = [...qwen.encode('<think> 1, 2, 3. </think>\n\n<answer> 3 </answer>'), 151645];
    const trained = Array.from(labels).flatMap((l, i) => (l === IGNORE_INDEX ? [] : [i]));
    // one contiguous run ending on the <|im_end|> that closes the answer, followed only by "\n"
    expect(trained.at(-1)! - trained[0] + 1).toBe(trained.length);
    expect(trained.map((i) => labels[i])).toEqual(target);
    expect(trained.map((i) => inputIds[i])).toEqual(target);
    expect(Array.from(inputIds.subarray(trained[0] - 3, trained[0]))).toEqual([151644, 77091, 198]); // header masked
    expect(trained.at(-1)).toBe(inputIds.length - 2);
    expect(inputIds.at(-1)).toBe(198);
    // the prompt (system, user, image pads) is masked
    const promptLength = processor.encodeMessages(messages.slice(0, 2), [image(56, 28, 1)]).inputIds.length;
    expect(trained[0]).toBe(promptLength);
  });

  it('label every assistant turn of a multi-turn conversation', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'one?' },
      { role: 'assistant', content: 'A1' },
      { role: 'user', content: 'two?' },
      { role: 'assistant', content: 'A2' },
    ];
    const { labels } = processor.encodeSft(messages);
    const kept = Array.from(labels).filter((l) => l !== IGNORE_INDEX);
    expect(kept).toEqual([...qwen.encode('A1'), 151645, ...qwen.encode('A2'), 151645]);
  });

  it('an answer that starts with a newline keeps the merged "\\n\\n" token', () => {
    const { labels } = processor.encodeSft([
      { role: 'user', content: 'q' },
      { role: 'assistant', content: '\nX' },
    ]);
    const kept = Array.from(labels).filter((l) => l !== IGNORE_INDEX);
    expect(kept).toEqual([...qwen.encode('\n\nX'), 151645]);
    expect(qwen.encode('\n\n')).toEqual([271]);
  });

  it('refuses conversations with nothing to learn', () => {
    expect(() => processor.encodeSft([{ role: 'user', content: 'q' }])).toThrow(
      'encodeSft: messages have no assistant turn to learn',
    );
  });

  it('works the same with the small task tokenizer', () => {
    const task = loadTaskTokenizer();
    const p = new Qwen2VLProcessor({ tokenizer: task, imageProcessor: new FakeImageProcessor() });
    const { inputIds, labels } = p.encodeSft(buildSftMessages('r1v-sft', sample), [image(28, 28, 1)]);
    const kept = Array.from(labels).filter((l) => l !== IGNORE_INDEX);
    expect(kept).toEqual([...task.encode('<think> 1, 2, 3. </think>\n\n<answer> 3 </answer>'), task.imEndId]);
    expect(task.decode(inputIds)).toContain('<|vision_start|><|image_pad|><|vision_end|><|im_end|>');
  });
});

describe('Qwen2VLProcessor chat template choice', () => {
  it("uses the tokenizer config's template (the 'default' one of a list), else the Qwen2-VL template", () => {
    const named = new Qwen2Tokenizer(qwen.json, {
      ...qwen.config,
      chat_template: [
        { name: 'tool_use', template: 'T' },
        { name: 'default', template: 'D:{{ messages[0].content }}' },
      ],
    });
    expect(
      new Qwen2VLProcessor({ tokenizer: named }).applyChatTemplate([{ role: 'user', content: 'x' }]),
    ).toBe('D:x');
    const none = new Qwen2Tokenizer(qwen.json, { ...qwen.config, chat_template: undefined });
    const p00 = byId('p00');
    expect(
      new Qwen2VLProcessor({ tokenizer: none }).applyChatTemplate(p00.messages!, {
        addGenerationPrompt: true,
      }),
    ).toBe(p00.text);
  });
});

describe('Qwen2VLProcessor.fromPretrained', () => {
  it('loads tokenizer and chat template from a checkpoint folder', async () => {
    const processor = await Qwen2VLProcessor.fromPretrained(fixturePath('qwen2-tokenizer'));
    const p00 = byId('p00');
    expect(processor.applyChatTemplate(p00.messages!, { addGenerationPrompt: true })).toBe(p00.text);
    expect(processor.imageProcessor).toBeUndefined(); // the fixture has no preprocessor_config.json
  });

  it("uses the image module's Qwen2-VL image processor when the checkpoint has a preprocessor_config.json", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'othink-ckpt-'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(fixturePath(`qwen2-tokenizer/${f}`), join(dir, f));
    // Qwen2-VL-2B-Instruct's preprocessor_config.json values (qwen2vl-spec §1.4)
    writeFileSync(
      join(dir, 'preprocessor_config.json'),
      JSON.stringify({
        min_pixels: 3136,
        max_pixels: 12845056,
        patch_size: 14,
        temporal_patch_size: 2,
        merge_size: 2,
        image_mean: [0.48145466, 0.4578275, 0.40821073],
        image_std: [0.26862954, 0.26130258, 0.27577711],
        image_processor_type: 'Qwen2VLImageProcessor',
        processor_class: 'Qwen2VLProcessor',
      }),
    );
    const processor = await Qwen2VLProcessor.fromPretrained(dir);
    if (!existsSync(join(import.meta.dirname, '..', 'src', 'image', 'index.ts'))) {
      expect(processor.imageProcessor).toBeUndefined();
      return;
    }
    // qwen2vl-spec §5.1 table: 224x224 -> 16x16 patches, 64 tokens; 70x70 -> 56x56, 4 tokens
    const messages = buildPromptMessages('r1v-train', { problem: 'How many?' });
    const encoded = processor.encodeMessages(messages, [image(224, 224, 128)]);
    expect(encoded.images[0].gridThw).toEqual([1, 16, 16]);
    expect(encoded.images[0].pixelValues.length).toBe(256 * 1176);
    expect(encoded.inputIds.filter((id) => id === IMAGE_PAD).length).toBe(64);
    expect(processor.encodeMessages(messages, [image(70, 70, 0)]).images[0].numImageTokens).toBe(4);
  });
});
