// The shapes data takes between files on disk and the model's inputs.

/** One example in the R1-V schema (clevr_cogen_a_train, GEOQA_R1V_Train_8K). */
export interface R1VSample {
  /** Image: a path relative to the dataset folder, or the encoded bytes (PNG / JPEG / WebP). */
  image: string | Uint8Array;
  /** The question shown to the model. */
  problem: string;
  /** The ground truth, often wrapped as `<answer> 3 </answer>`. */
  solution: string;
  /** Optional reasoning trace, used as the `<think>` part of SFT targets. */
  thinking?: string;
  /** Any further fields of the row, passed through to reward functions. */
  [field: string]: unknown;
}

/** An image after the Qwen2-VL image processor. */
export interface ProcessedImage {
  /** `[gridT * gridH * gridW, 3 * 2 * 14 * 14]` row-major patches in merge-window order. */
  pixelValues: Float32Array;
  /** `[t, h, w]` in patches. */
  gridThw: [number, number, number];
  /** Number of `<|image_pad|>` tokens the image takes in the prompt: t * h * w / merge^2. */
  numImageTokens: number;
}

/** Decoded RGB pixels, row-major `[height, width, 3]`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}
