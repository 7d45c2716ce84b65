// Rebuilds packages/data/assets/task-tokenizer/{tokenizer.json,tokenizer_config.json}.
// Usage (from the repo root): npx tsx packages/data/scripts/build-task-tokenizer.ts
// Deterministic: the same source gives byte-identical files (test/task-tokenizer.test.ts checks it).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildTaskTokenizerFiles, formatJsonFile, taskTokenizerDir } from '../src/text/task-tokenizer.js';

const dir = taskTokenizerDir();
const { tokenizer, config } = buildTaskTokenizerFiles();
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'tokenizer.json'), formatJsonFile(tokenizer));
writeFileSync(join(dir, 'tokenizer_config.json'), formatJsonFile(config));
const merges = tokenizer.model.merges.length;
console.log(
  `wrote ${dir}: ${Object.keys(tokenizer.model.vocab).length} BPE tokens (${merges} merges) + ` +
    `${tokenizer.added_tokens.length} special tokens`,
);
