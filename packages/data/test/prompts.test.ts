import { readFileSync } from 'node:fs';
import { fixturePath } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import {
  buildPromptMessages,
  buildSftMessages,
  ChatTemplate,
  formatQuestion,
  PROMPT_PRESETS,
  type PromptTemplate,
  Qwen2Tokenizer,
  R1_SYSTEM_PROMPT,
  resolvePromptTemplate,
  sftTarget,
} from '../src/text/index.js';

// The strings below are typed from paper-spec §5 (R1-V grpo.py, eval scripts, sft.py), not from the code under test.
const TAIL = 'the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags.';

describe('R1-V prompt presets', () => {
  it('GRPO training: two spaces after the question, image before the text, no system message', () => {
    const messages = buildPromptMessages('r1v-train', { problem: 'How many items are there in the image?' });
    expect(messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'image' },
          { type: 'text', text: `How many items are there in the image?  Output ${TAIL}` },
        ],
      },
    ]);
  });

  it('SuperCLEVR eval: "First output", one space', () => {
    const [user] = buildPromptMessages('r1v-eval-superclevr', {
      problem: 'How many different items are there in the image?',
    });
    expect(user.content).toEqual([
      { type: 'image' },
      { type: 'text', text: `How many different items are there in the image? First output ${TAIL}` },
    ]);
  });

  it('GeoQA eval: one space; renders and tokenizes as fixture case p01', () => {
    const cases = JSON.parse(readFileSync(fixturePath('qwen2-tokenizer/cases.json'), 'utf8')).cases;
    const p01 = cases.find((c: { id: string }) => c.id === 'p01');
    const messages = buildPromptMessages('r1v-eval-geoqa', {
      problem: 'How many items are there in the image?',
    });
    expect(messages).toEqual(p01.messages);
    const text = ChatTemplate.qwen2vl().render(messages, { addGenerationPrompt: true });
    expect(text).toBe(p01.text);
    const tokenizer = Qwen2Tokenizer.fromFile(fixturePath('qwen2-tokenizer'));
    expect(tokenizer.encode(text)).toEqual(p01.ids);
  });

  it('SFT: R1 system prompt, problem text then the image, target "thinking\\n\\nsolution"', () => {
    const sample = {
      problem: 'How many cubes?',
      thinking: '<think>1, 2.</think>',
      solution: '<answer> 2 </answer>',
    };
    expect(buildSftMessages('r1v-sft', sample)).toEqual([
      {
        role: 'system',
        content:
          'A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>',
      },
      { role: 'user', content: [{ type: 'text', text: 'How many cubes?' }, { type: 'image' }] },
      { role: 'assistant', content: '<think>1, 2.</think>\n\n<answer> 2 </answer>' },
    ]);
    expect(R1_SYSTEM_PROMPT.startsWith('A conversation between User and Assistant.')).toBe(true);
  });

  it('SFT target without thinking (GeoQA) is the solution alone; a custom target function is used as given', () => {
    expect(sftTarget({ solution: '<answer>70°</answer>' })).toBe('<answer>70°</answer>');
    expect(sftTarget({ solution: 'S', thinking: '' })).toBe('S');
    const msgs = buildSftMessages(
      'r1v-train',
      { problem: 'P', solution: '3' },
      (s) => `<answer>${s.solution}</answer>`,
    );
    expect(msgs.at(-1)).toEqual({ role: 'assistant', content: '<answer>3</answer>' });
  });

  it('lists exactly the four presets', () => {
    expect(Object.keys(PROMPT_PRESETS).sort()).toEqual([
      'r1v-eval-geoqa',
      'r1v-eval-superclevr',
      'r1v-sft',
      'r1v-train',
    ]);
  });
});

describe('user prompt templates', () => {
  const mine: PromptTemplate = {
    name: 'mine',
    system: 'Count carefully.',
    question: 'Q: {Question} A:',
    imagePosition: 'after',
  };

  it('are used as given, with system message and image position', () => {
    expect(buildPromptMessages(mine, { problem: 'how many?' })).toEqual([
      { role: 'system', content: 'Count carefully.' },
      { role: 'user', content: [{ type: 'text', text: 'Q: how many? A:' }, { type: 'image' }] },
    ]);
    const textOnly = { ...mine, imagePosition: 'none' as const };
    expect(buildPromptMessages(textOnly, { problem: 'x' })[1].content).toEqual([
      { type: 'text', text: 'Q: x A:' },
    ]);
  });

  it('insert the problem literally (no $-patterns, no brace formatting)', () => {
    expect(formatQuestion(mine, "$& $1 {Question} 'x'")).toBe("Q: $& $1 {Question} 'x' A:");
  });

  it('are checked, with errors that name the template and field', () => {
    expect(() => resolvePromptTemplate('r1v-grpo' as never)).toThrow(
      'unknown prompt preset "r1v-grpo"; presets: r1v-train, r1v-eval-superclevr, r1v-eval-geoqa, r1v-sft',
    );
    expect(() => resolvePromptTemplate({ ...mine, question: 'no placeholder' })).toThrow(
      'prompt template "mine": "question" has no {Question} placeholder',
    );
    expect(() => resolvePromptTemplate({ ...mine, imagePosition: 'middle' as never })).toThrow(
      'prompt template "mine": imagePosition must be before, after or none',
    );
  });
});
