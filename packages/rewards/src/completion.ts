// Completions reach the rewards as plain text or, in TRL's conversational form, as
// `[{ role: 'assistant', content: text }]` (paper-spec §8 item 8).

import type { ChatMessage } from './types.js';

/**
 * The text of a completion: the string itself, or the content of its first message, as R1-V's rewards
 * read `completion[0]["content"]`. Multimodal content parts contribute their `text` fields, in order.
 */
export function completionText(completion: string | readonly ChatMessage[]): string {
  if (typeof completion === 'string') return completion;
  const content = completion[0]?.content;
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) if (part?.type === 'text' && typeof part.text === 'string') text += part.text;
  return text;
}
