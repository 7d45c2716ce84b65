// The processor (tokenizer + chat template + image processor) of a run: the task tokenizer for the
// tiny model, a checkpoint folder's own files otherwise. Saved next to checkpoints so that
// `othink eval` / `generate` find it again.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  loadTaskTokenizer,
  Qwen2Tokenizer,
  Qwen2VLImageProcessor,
  type Qwen2VLImageProcessorOptions,
  Qwen2VLProcessor,
  taskTokenizerDir,
} from '@othink/data';

export interface RunProcessor {
  processor: Qwen2VLProcessor;
  tokenizer: Qwen2Tokenizer;
  imageProcessor: Qwen2VLImageProcessor;
  /** Folder the tokenizer files come from. */
  tokenizerDir: string;
}

export interface ProcessorOptions {
  minPixels?: number;
  maxPixels?: number;
}

function pixelOverrides(o: ProcessorOptions): Partial<Qwen2VLImageProcessorOptions> {
  const out: Partial<Qwen2VLImageProcessorOptions> = {};
  if (o.minPixels !== undefined) out.minPixels = o.minPixels;
  if (o.maxPixels !== undefined) out.maxPixels = o.maxPixels;
  return out;
}

/** `tiny`: the task tokenizer; a folder: its tokenizer.json and preprocessor_config.json. */
export async function loadRunProcessor(
  modelPath: string,
  options: ProcessorOptions = {},
): Promise<RunProcessor> {
  if (modelPath === 'tiny') {
    const tokenizer = loadTaskTokenizer();
    const imageProcessor = new Qwen2VLImageProcessor(pixelOverrides(options));
    return {
      processor: new Qwen2VLProcessor({ tokenizer, imageProcessor }),
      tokenizer,
      imageProcessor,
      tokenizerDir: taskTokenizerDir(),
    };
  }
  const dir = findProcessorDir(modelPath);
  if (!dir) {
    throw new Error(
      `${modelPath}: no tokenizer.json there or in a processor/ folder of the run it belongs to; copy the tokenizer files of the base model into it`,
    );
  }
  const tokenizer = Qwen2Tokenizer.fromFile(dir);
  const imageProcessor = existsSync(join(dir, 'preprocessor_config.json'))
    ? await Qwen2VLImageProcessor.fromPretrained(dir, pixelOverrides(options))
    : new Qwen2VLImageProcessor(pixelOverrides(options));
  const processor = await Qwen2VLProcessor.fromPretrained(dir, { imageProcessor });
  return { processor, tokenizer, imageProcessor, tokenizerDir: dir };
}

/**
 * Where the tokenizer of a model folder is: the folder itself, or for a checkpoint inside a run
 * folder (`<run>/<phase>/checkpoint-N`, `<run>/final`) the run's `processor/` folder.
 */
export function findProcessorDir(modelDir: string): string | undefined {
  let dir = resolve(modelDir);
  for (let up = 0; up < 4; up++) {
    if (existsSync(join(dir, 'tokenizer.json'))) return dir;
    if (existsSync(join(dir, 'processor', 'tokenizer.json'))) return join(dir, 'processor');
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

/** Writes tokenizer.json, tokenizer_config.json and preprocessor_config.json into `dir`. */
export function saveRunProcessor(p: RunProcessor, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.json', 'chat_template.jinja']) {
    const src = join(p.tokenizerDir, f);
    if (existsSync(src) && resolve(src) !== resolve(join(dir, f))) copyFileSync(src, join(dir, f));
  }
  const o = p.imageProcessor.options;
  const config = {
    image_processor_type: 'Qwen2VLImageProcessor',
    processor_class: 'Qwen2VLProcessor',
    min_pixels: o.minPixels,
    max_pixels: o.maxPixels,
    patch_size: o.patchSize,
    temporal_patch_size: o.temporalPatchSize,
    merge_size: o.mergeSize,
    image_mean: [...o.imageMean],
    image_std: [...o.imageStd],
    do_resize: o.doResize,
    do_rescale: o.doRescale,
    rescale_factor: o.rescaleFactor,
    do_normalize: o.doNormalize,
    do_convert_rgb: true,
    resample: 3,
  };
  writeFileSync(join(dir, 'preprocessor_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}
