// Text pipeline throughput: R1-V prompts / s through chat template + tokenizer (+ image-pad expansion),
// for the 151k-token Qwen2 vocabulary and the small task tokenizer. Medians over repeated passes.
import { fixturePath } from '@othink/testing';
import {
  buildPromptMessages,
  buildSftMessages,
  loadTaskTokenizer,
  type ProcessedImage,
  type Qwen2Tokenizer,
  Qwen2Tokenizer as Qwen2TokenizerClass,
  Qwen2VLProcessor,
} from '../src/index.js';

export interface TextBenchOptions {
  /** Distinct prompts per pass (default 256). */
  prompts?: number;
  /** Timed passes; the median is reported (default 7, after one warm-up pass). */
  repeats?: number;
}

const COLORS = ['red', 'blue', 'green', 'yellow', 'purple', 'gray', 'brown', 'cyan'];
const SHAPES = ['cubes', 'spheres', 'cylinders', 'objects'];

/** Counting and geometry problems in the style of CLEVR / GeoQA, all different. */
function problems(n: number): { problem: string; solution: string; thinking: string }[] {
  return Array.from({ length: n }, (_, i) => {
    const a = 10 + (i % 70);
    return i % 2 === 0
      ? {
          problem: `How many ${COLORS[i % COLORS.length]} ${SHAPES[(i >> 3) % SHAPES.length]} are there in the image? (scene ${i})`,
          solution: `<answer> ${i % 10} </answer>`,
          thinking: `<think> Counting them one by one gives ${i % 10}. </think>`,
        }
      : {
          problem: `As shown in the figure, AB is the diameter of circle O, ∠BAC = ${a}°, then the degree of ∠ABC is () [${i}]`,
          solution: `<answer>${90 - a}°</answer>`,
          thinking: `<think> ∠ACB = 90°, so ∠ABC = 90° - ${a}° = ${90 - a}°. </think>`,
        };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timed(repeats: number, items: number, pass: () => void): number {
  pass(); // warm-up: JIT and the tokenizer's word cache
  const rates: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    pass();
    rates.push(items / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

/** A processed image standing in for a 224x224 picture (64 tokens): only its token count is read here. */
const IMAGE: ProcessedImage = {
  pixelValues: new Float32Array(256 * 1176),
  gridThw: [1, 16, 16],
  numImageTokens: 64,
};

/**
 * Medians of prompts / s for: GRPO prompts (R1-V training template, chat template, tokenize, expand a
 * 64-token image) and SFT examples (template, tokenize, assistant-only labels), on the Qwen2 tokenizer
 * fixture and on the task tokenizer.
 */
export async function benchTextPipeline(
  options: TextBenchOptions = {},
): Promise<{ name: string; perSecond: number }[]> {
  const n = options.prompts ?? 256;
  const repeats = options.repeats ?? 7;
  const samples = problems(n);
  const tokenizers: [string, Qwen2Tokenizer][] = [
    ['qwen2 (151k vocab)', Qwen2TokenizerClass.fromFile(fixturePath('qwen2-tokenizer'))],
    ['task tokenizer', loadTaskTokenizer()],
  ];
  const results: { name: string; perSecond: number }[] = [];
  for (const [label, tokenizer] of tokenizers) {
    const processor = new Qwen2VLProcessor({ tokenizer });
    const prompts = samples.map((s) => buildPromptMessages('r1v-train', s));
    const sft = samples.map((s) => buildSftMessages('r1v-sft', s));
    results.push({
      name: `text: r1v-train prompt -> template + tokenize + image pads, ${label} (prompts/s)`,
      perSecond: timed(repeats, n, () => {
        for (const m of prompts) processor.encodeMessages(m, [IMAGE]);
      }),
    });
    results.push({
      name: `text: r1v-sft example -> template + tokenize + labels, ${label} (examples/s)`,
      perSecond: timed(repeats, n, () => {
        for (const m of sft) processor.encodeSft(m, [IMAGE]);
      }),
    });
  }
  return results;
}

// `npx tsx packages/data/bench/text.ts` prints the numbers.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const { name, perSecond } of await benchTextPipeline())
    console.log(`${perSecond.toFixed(0).padStart(8)}  ${name}`);
}
