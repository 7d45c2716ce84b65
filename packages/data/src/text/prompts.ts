// R1-V prompt templates (paper-spec §5) as named presets, and the messages they build from a sample.
import type { R1VSample } from '../schema.js';
import type { ChatMessage, ContentPart } from './chat-template.js';

/** The placeholder a question template replaces with the sample's `problem`. */
export const QUESTION_PLACEHOLDER = '{Question}';

/** R1's system prompt (R1-V `grpo.py` SYSTEM_PROMPT; used by R1-V's SFT script). */
export const R1_SYSTEM_PROMPT =
  'A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>';

export interface PromptTemplate {
  /** Preset name, or any label for a user template. */
  name: string;
  /** User text; `{Question}` is replaced by the sample's problem. */
  question: string;
  /** A system message; when absent, the chat template adds its default (Qwen2-VL: "You are a helpful assistant."). */
  system?: string;
  /** Where the image goes in the user turn (R1-V: before the text for GRPO / eval, after it for SFT). */
  imagePosition: 'before' | 'after' | 'none';
}

/**
 * The R1-V templates, strings exactly as in paper-spec §5:
 * - `r1v-train`: GRPO training (`grpo.py` QUESTION_TEMPLATE; two spaces after the question);
 * - `r1v-eval-superclevr`: counting eval ("First output ...", one space);
 * - `r1v-eval-geoqa`: geometry eval (one space);
 * - `r1v-sft`: SFT (R1 system prompt, problem text then image).
 */
export const PROMPT_PRESETS = {
  'r1v-train': {
    name: 'r1v-train',
    question:
      '{Question}  Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags.',
    imagePosition: 'before',
  },
  'r1v-eval-superclevr': {
    name: 'r1v-eval-superclevr',
    question:
      '{Question} First output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags.',
    imagePosition: 'before',
  },
  'r1v-eval-geoqa': {
    name: 'r1v-eval-geoqa',
    question:
      '{Question} Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags.',
    imagePosition: 'before',
  },
  'r1v-sft': {
    name: 'r1v-sft',
    question: '{Question}',
    system: R1_SYSTEM_PROMPT,
    imagePosition: 'after',
  },
} as const satisfies Record<string, PromptTemplate>;

export type PromptPresetName = keyof typeof PROMPT_PRESETS;

/** A preset by name, or a user template checked for the fields it needs. */
export function resolvePromptTemplate(template: PromptPresetName | PromptTemplate): PromptTemplate {
  if (typeof template === 'string') {
    const preset = (PROMPT_PRESETS as Record<string, PromptTemplate>)[template];
    if (!preset) {
      throw new Error(
        `unknown prompt preset ${JSON.stringify(template)}; presets: ${Object.keys(PROMPT_PRESETS).join(', ')}`,
      );
    }
    return preset;
  }
  if (!template || typeof template.question !== 'string')
    throw new Error('prompt template: "question" must be a string');
  if (!template.question.includes(QUESTION_PLACEHOLDER)) {
    throw new Error(
      `prompt template ${JSON.stringify(template.name)}: "question" has no ${QUESTION_PLACEHOLDER} placeholder`,
    );
  }
  if (!['before', 'after', 'none'].includes(template.imagePosition)) {
    throw new Error(
      `prompt template ${JSON.stringify(template.name)}: imagePosition must be before, after or none`,
    );
  }
  if (template.system !== undefined && typeof template.system !== 'string') {
    throw new Error(`prompt template ${JSON.stringify(template.name)}: "system" must be a string`);
  }
  return template;
}

/** The question text: every `{Question}` replaced by `problem` (taken literally, `$` included). */
export function formatQuestion(template: PromptTemplate, problem: string): string {
  return template.question.split(QUESTION_PLACEHOLDER).join(problem);
}

/** System (if any) and user messages that ask the sample's question; the assistant answers next. */
export function buildPromptMessages(
  template: PromptPresetName | PromptTemplate,
  sample: Pick<R1VSample, 'problem'>,
): ChatMessage[] {
  const t = resolvePromptTemplate(template);
  const text: ContentPart = { type: 'text', text: formatQuestion(t, sample.problem) };
  const content: ContentPart[] =
    t.imagePosition === 'before'
      ? [{ type: 'image' }, text]
      : t.imagePosition === 'after'
        ? [text, { type: 'image' }]
        : [text];
  const messages: ChatMessage[] = [];
  if (t.system !== undefined) messages.push({ role: 'system', content: t.system });
  messages.push({ role: 'user', content });
  return messages;
}

/**
 * The SFT target (R1-V `sft.py`): `"{thinking}\n\n{solution}"`. Without a `thinking` field (GeoQA)
 * R1-V would emit the string "None\n\n..."; we use the solution alone (paper-spec §5.4, an assumption).
 */
export function sftTarget(sample: Pick<R1VSample, 'solution' | 'thinking'>): string {
  return sample.thinking !== undefined && sample.thinking !== ''
    ? `${sample.thinking}\n\n${sample.solution}`
    : sample.solution;
}

/** Prompt messages plus the assistant's target answer, for supervised fine-tuning. */
export function buildSftMessages(
  template: PromptPresetName | PromptTemplate,
  sample: Pick<R1VSample, 'problem' | 'solution' | 'thinking'>,
  target: (s: Pick<R1VSample, 'solution' | 'thinking'>) => string = sftTarget,
): ChatMessage[] {
  return [...buildPromptMessages(template, sample), { role: 'assistant', content: target(sample) }];
}
