// The fixture-driven suites must pass on any fixture set of the public set's format (issue 16;
// `OTHINK_FIXTURES=/other/set pnpm test`). Running every suite on a second set would double CI
// time, so this file derives one in-process (renamed case files, permuted token ids:
// packages/testing/src/derive.ts; scripts/derive-fixture-set.ts writes the whole set) and checks a
// representative subset against it: the parity forward of one case, read through the same
// helpers the suites use, and the greedy generation ids. The full run on a derived set is
// `node --import tsx scripts/derive-fixture-set.ts /tmp/derived && OTHINK_FIXTURES=/tmp/derived pnpm vitest run`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deriveFixtureSet,
  Fixture,
  fixtureAreaDigest,
  fixtureCases,
  fixturesDir,
  GENERATION_CASE_FILTER,
  isPublicFixtureSet,
  specialTokens,
  tinyConfig,
} from '@othink/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, Qwen2VLForConditionalGeneration, Tensor, tidy } from '../src/index.js';
import { checkForward, MOST_IMAGES_CASE } from './qwen2vl-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'othink-derived-'));
// Another seed than the script's default, so that the set differs from the one in use even when
// OTHINK_FIXTURES points at a set the script derived.
deriveFixtureSet(fixturesDir(), root, { areas: ['qwen2vl-tiny'], seed: 1616 });
const derived = join(root, 'qwen2vl-tiny');
const model = Qwen2VLForConditionalGeneration.fromPretrained(derived);
afterAll(() => {
  model.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('a derived fixture set (renamed cases, permuted vocabulary)', () => {
  it('really differs from the set it came from', () => {
    expect(fixtureAreaDigest(derived)).not.toBe(fixtureAreaDigest('qwen2vl-tiny'));
    const ours = specialTokens(derived);
    const theirs = specialTokens();
    // A random permutation may leave a given token in place, not all of them.
    expect(Object.keys(ours.ids).filter((k) => ours.ids[k] !== theirs.ids[k]).length).toBeGreaterThan(0);
    expect(tinyConfig(derived).image_token_id).toBe(ours.imagePad);
    // Deriving from the public set renames every case (a derived set's names may come back).
    if (isPublicFixtureSet('qwen2vl-tiny'))
      expect(fixtureCases(derived).filter((c) => fixtureCases('qwen2vl-tiny').includes(c))).toEqual([]);
  });

  it('the model reproduces the forward of its case with the most images (positions, every layer, logits, loss)', () => {
    // The derived case with the same header as the source's case (the forward references are kept).
    const source = new Fixture(`qwen2vl-tiny/${MOST_IMAGES_CASE}.safetensors`);
    const name = fixtureCases(derived, { with: ['logits', 'grad.'] }).find(
      (c) => new Fixture(join(derived, `${c}.safetensors`)).scalar('loss') === source.scalar('loss'),
    );
    expect(name).toBeDefined();
    const f = new Fixture(join(derived, `${name}.safetensors`));
    expect(Array.from(f.i32('input_ids'))).not.toEqual(Array.from(source.i32('input_ids')));
    checkForward(model, f);
  });

  it('greedy generation gives the derived ids exactly', () => {
    const unused = specialTokens(derived).unusedIds.at(-1)!;
    for (const name of fixtureCases(derived, GENERATION_CASE_FILTER)) {
      const f = new Fixture(join(derived, `${name}.safetensors`));
      const [batch, seqLen] = f.shape('input_ids');
      const out = tidy(() =>
        generate(
          model,
          {
            batch,
            seqLen,
            inputIds: f.i32('input_ids'),
            attentionMask: f.i32('attention_mask'),
            pixelValues: Tensor.from(f.f32('pixel_values'), f.shape('pixel_values')),
            imageGridThw: f.i32('image_grid_thw'),
          },
          {
            doSample: false,
            maxNewTokens: f.scalar('max_new_tokens'),
            stopTokenIds: [unused],
            stopWhenAllDone: false,
          },
        ),
      );
      expect(Array.from(out.completionIds), name).toEqual(Array.from(f.i32('generated_ids')));
    }
  });
});
