// The shapes reward functions take and return. Mirrors TRL's reward-function contract
// (`reward_func(prompts, completions, **columns) -> list[float]`) in a per-completion and a batch form.

/** One part of a multimodal chat message, as in the Hugging Face chat format. */
export interface ChatContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** A chat message, as TRL passes conversational prompts and completions. */
export interface ChatMessage {
  role: string;
  content: string | ChatContentPart[];
}

/** A prompt as the trainer built it: plain text, or the conversation sent to the chat template. */
export type Prompt = string | ChatMessage[];

/** What a reward function knows about the completion it scores. */
export interface RewardContext {
  /** The prompt the completion answers. */
  prompt: Prompt;
  /** The dataset row the prompt came from (R1-V schema: `problem`, `solution`, ...), all its fields. */
  sample: Record<string, unknown>;
  /** Position of the completion in the batch. */
  index: number;
}

/**
 * Scores one completion. Sync or async; anything but a finite number is treated as a failure by
 * `combineRewards`. The built-in rewards return 0 or 1, as R1-V's do.
 */
export type RewardFunction = (completion: string, context: RewardContext) => number | Promise<number>;

/** What a batch reward function knows: the prompts and rows, aligned with the completions. */
export interface BatchRewardContext {
  prompts: readonly Prompt[];
  samples: readonly Record<string, unknown>[];
}

/**
 * Scores a whole batch at once (TRL's form; useful for a remote judge that batches requests).
 * Must return one value per completion.
 */
export type BatchRewardFunction = (
  completions: readonly string[],
  context: BatchRewardContext,
) => readonly number[] | Promise<readonly number[]>;

/** Where `combineRewards` reports failing reward functions; `console` fits. */
export interface RewardLogger {
  warn(message: string): void;
}
