// SFT labels: train on the assistant's answers only.
import type { Tokenizer } from '../text/tokenizer.js';

/** Label of a position the loss ignores (PyTorch cross-entropy `ignore_index`). */
export const IGNORE_INDEX = -100;

export interface AssistantSpanTokens {
  imStartId: number;
  imEndId: number;
  imagePadId: number;
  /** Ids of the role name after `<|im_start|>` (`assistant` is one token in Qwen2). */
  assistantIds: readonly number[];
  /** Id of the `\n` that ends the role header. */
  newlineId: number;
}

/** The ids the label mask looks for, from a tokenizer with the Qwen chat markup. */
export function assistantSpanTokens(
  tokenizer: Tokenizer & { imStartId: number; imEndId: number; imagePadId: number },
): AssistantSpanTokens {
  const newline = tokenizer.encode('\n', { addSpecialTokens: false });
  if (newline.length !== 1) throw new Error(`"\\n" must be one token, got ${newline.length}`);
  return {
    imStartId: tokenizer.imStartId,
    imEndId: tokenizer.imEndId,
    imagePadId: tokenizer.imagePadId,
    assistantIds: tokenizer.encode('assistant', { addSpecialTokens: false }),
    newlineId: newline[0],
  };
}

/**
 * Labels for a rendered conversation: each assistant turn's content and the `<|im_end|>` that closes
 * it keep their ids; everything else (system and user turns, the `<|im_start|>assistant\n` header,
 * the `\n` after `<|im_end|>`, image pads) is IGNORE_INDEX. `<|im_end|>` is trained because it is the
 * stop token (qwen2vl-spec §6.3): a model that never learns it never stops. An assistant turn cut off
 * before its `<|im_end|>` is labelled to the end.
 */
export function assistantLabels(ids: ArrayLike<number>, t: AssistantSpanTokens): Int32Array {
  const labels = new Int32Array(ids.length).fill(IGNORE_INDEX);
  const role = t.assistantIds;
  let i = 0;
  while (i < ids.length) {
    if (ids[i] !== t.imStartId || !role.every((r, k) => ids[i + 1 + k] === r)) {
      i++;
      continue;
    }
    let j = i + 1 + role.length;
    // The header's "\n"; when the answer itself starts with a newline the two merge into one token,
    // which then belongs to the answer.
    if (ids[j] === t.newlineId) j++;
    for (; j < ids.length; j++) {
      if (ids[j] !== t.imagePadId) labels[j] = ids[j];
      if (ids[j] === t.imEndId) break;
    }
    i = j + 1;
  }
  return labels;
}
