import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  type ChatMessage,
  ChatTemplate,
  loadChatTemplate,
  pickChatTemplate,
  QWEN2VL_CHAT_TEMPLATE,
  readChatTemplateSource,
} from '../src/text/index.js';

interface ChatCase {
  id: string;
  kind: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  add_vision_id: boolean;
  text: string;
}

const fixture = JSON.parse(readFileSync(fixturePath('qwen2-tokenizer/cases.json'), 'utf8'));
const chatCases: ChatCase[] = fixture.cases.filter((c: ChatCase) => c.kind === 'chat');
const config = JSON.parse(readFileSync(fixturePath('qwen2-tokenizer/tokenizer_config.json'), 'utf8'));

describe('Qwen2-VL chat template', () => {
  it('the built-in template is the checkpoint template verbatim', () => {
    expect(QWEN2VL_CHAT_TEMPLATE).toBe(config.chat_template);
  });

  it('covers the fixture chat cases (system default, custom system, vision ids, no generation prompt, several images)', () => {
    expect(chatCases.map((c) => c.id)).toEqual(['p00', 'p01', 'p02', 'p03', 'p04', 'p05']);
  });

  it.each(chatCases.map((c) => [c.id, c] as const))('%s renders exactly as the fixture', (_id, c) => {
    const template = loadChatTemplate(fixturePath('qwen2-tokenizer'));
    const text = template.render(c.messages, {
      addGenerationPrompt: c.add_generation_prompt,
      addVisionId: c.add_vision_id,
    });
    expect(text).toBe(c.text);
  });

  it('renders the spec example (qwen2vl-spec §6.1)', () => {
    const text = ChatTemplate.qwen2vl().render(
      [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this image.' }] }],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('renders an assistant answer and a video slot; image parts concatenate with no separator', () => {
    const text = ChatTemplate.qwen2vl().render([
      { role: 'system', content: 'S' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'a' },
          { type: 'image', image: 'x.png' },
          { type: 'video' },
          { type: 'text', text: 'b' },
        ],
      },
      { role: 'assistant', content: '<answer> 3 </answer>' },
    ]);
    expect(text).toBe(
      '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|>b<|im_end|>\n<|im_start|>assistant\n<answer> 3 </answer><|im_end|>\n',
    );
  });

  it('names the message at fault', () => {
    const t = ChatTemplate.qwen2vl();
    expect(() => t.render([{ role: 'user', content: [{ type: 'text' } as never] }])).toThrow(
      'messages[0].content[0].text must be a string',
    );
    expect(() => t.render([{ role: 'user', content: [{ type: 'audio' } as never] }])).toThrow(
      'messages[0].content[0].type "audio" is not text, image or video',
    );
    expect(() => t.render([{ role: 'user', content: 3 as never }])).toThrow(
      'messages[0].content must be a string or an array',
    );
    expect(() => new ChatTemplate('{% for x in %}')).toThrow('chat template does not parse');
  });

  it('passes special tokens and extra variables to the template, as transformers does', () => {
    const t = new ChatTemplate(
      '{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}{{ custom }}',
      {
        bos_token: '<s>',
        eos_token: '</s>',
      },
    );
    expect(t.render([{ role: 'user', content: 'hi' }], { extra: { custom: '!' } })).toBe('<s>hi</s>!');
  });
});

describe('loading a chat template from a checkpoint folder', () => {
  const write = (dir: string, name: string, content: string) => writeFileSync(join(dir, name), content);

  it('prefers chat_template.jinja, then chat_template.json, then tokenizer_config.json', () => {
    const dir = mkdtempSync(join(tmpdir(), 'othink-chat-'));
    expect(readChatTemplateSource(dir)).toBeUndefined();
    expect(() => loadChatTemplate(dir)).toThrow(
      `${dir}: no chat template (looked in chat_template.jinja, chat_template.json, tokenizer_config.json)`,
    );
    expect(loadChatTemplate(dir, { fallbackToQwen2VL: true }).source).toBe(QWEN2VL_CHAT_TEMPLATE);
    write(dir, 'tokenizer_config.json', JSON.stringify({ chat_template: 'from-config' }));
    expect(readChatTemplateSource(dir)).toBe('from-config');
    write(dir, 'chat_template.json', JSON.stringify({ chat_template: 'from-json' }));
    expect(readChatTemplateSource(dir)).toBe('from-json');
    write(dir, 'chat_template.jinja', 'from-jinja');
    expect(loadChatTemplate(dir).render([])).toBe('from-jinja');
  });

  it('picks a named template from a list and reports bad JSON', () => {
    const list = [
      { name: 'default', template: 'D' },
      { name: 'tool_use', template: 'T' },
    ];
    expect(pickChatTemplate(list)).toBe('D');
    expect(pickChatTemplate(list, 'tool_use')).toBe('T');
    expect(() => pickChatTemplate(list, 'rag')).toThrow(
      'no chat template named "rag"; have default, tool_use',
    );
    const dir = mkdtempSync(join(tmpdir(), 'othink-chat-'));
    write(dir, 'chat_template.json', '{oops');
    expect(() => readChatTemplateSource(dir)).toThrow(`${join(dir, 'chat_template.json')} is not valid JSON`);
  });
});
