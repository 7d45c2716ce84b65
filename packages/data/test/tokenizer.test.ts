import { readFileSync } from 'node:fs';
import { fixturePath } from '@othink/testing';
import { describe, expect, it } from 'vitest';
import { QWEN2VL_SPECIAL_TOKENS, Qwen2Tokenizer, Tokenizer } from '../src/text/index.js';

interface Case {
  id: string;
  kind: 'chat' | 'chat-expanded' | 'plain';
  text: string;
  ids: number[];
  tokens: string[];
  decoded: string;
  decoded_skip_special_tokens: string;
}

const cases: Case[] = JSON.parse(readFileSync(fixturePath('qwen2-tokenizer/cases.json'), 'utf8')).cases;
const tokenizer = Qwen2Tokenizer.fromFile(fixturePath('qwen2-tokenizer'));

describe('Qwen2 tokenizer against the fixture (HF Rust tokenizers oracle)', () => {
  it('has all the cases', () => {
    expect(cases.length).toBe(42);
  });

  it.each(cases.map((c) => [c.id, c] as const))('%s: ids, tokens and both decodes match', (_id, c) => {
    const { ids, tokens } = tokenizer.encodeWithTokens(c.text);
    expect(ids).toEqual(c.ids);
    expect(tokens).toEqual(c.tokens);
    expect(tokenizer.encode(c.text)).toEqual(c.ids);
    expect(tokenizer.decode(c.ids)).toBe(c.decoded);
    expect(tokenizer.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded_skip_special_tokens);
    expect(tokenizer.decode(Int32Array.from(c.ids))).toBe(c.decoded);
  });
});

describe('Qwen2Tokenizer facade', () => {
  it('knows the 14 Qwen2-VL special tokens at 151643..151656 and the config tokens', () => {
    QWEN2VL_SPECIAL_TOKENS.forEach((t, i) => {
      expect(tokenizer.specialTokens.get(t)).toBe(151643 + i);
      expect(tokenizer.isSpecial(151643 + i)).toBe(true);
    });
    expect(tokenizer.vocabSize).toBe(151657);
    expect(tokenizer.imagePadId).toBe(151655);
    expect(tokenizer.imStartId).toBe(151644);
    expect(tokenizer.imEndId).toBe(151645);
    expect(tokenizer.visionStartId).toBe(151652);
    expect(tokenizer.eosToken).toBe('<|im_end|>');
    expect(tokenizer.eosTokenId).toBe(151645);
    expect(tokenizer.padTokenId).toBe(151643);
    expect(tokenizer.paddingSide).toBe('left');
    expect(tokenizer.stopTokenIds).toEqual([151645, 151643]);
    expect(tokenizer.isSpecial(198)).toBe(false);
  });

  it('never splits a special token, whatever surrounds it', () => {
    for (const t of QWEN2VL_SPECIAL_TOKENS) {
      const id = tokenizer.specialTokens.get(t)!;
      expect(tokenizer.encode(t)).toEqual([id]);
      const around = tokenizer.encode(`x${t}y`);
      expect(around).toEqual([...tokenizer.encode('x'), id, ...tokenizer.encode('y')]);
    }
    // Ordinary text that merely resembles a special token is not one.
    expect(tokenizer.encode('<|im_start|').includes(151644)).toBe(false);
  });

  it('maps tokens and ids both ways', () => {
    expect(tokenizer.tokenToId('assistant')).toBe(77091);
    expect(tokenizer.idToToken(198)).toBe('Ċ');
    expect(tokenizer.tokenToId('no-such-token-xyz')).toBeUndefined();
    expect(tokenizer.requireTokenId('<|image_pad|>')).toBe(151655);
    expect(() => tokenizer.requireTokenId('<|nope|>')).toThrow('tokenizer has no token "<|nope|>"');
  });

  it('decodes an empty list to "" and names an out-of-range id and its position', () => {
    expect(tokenizer.decode([])).toBe('');
    expect(() => tokenizer.decode([9707, 151657])).toThrow(
      'decode: token id 151657 at position 1 is outside the vocabulary (0..151656)',
    );
    expect(() => tokenizer.decode([-1])).toThrow('position 0');
    expect(() => tokenizer.decode([1.5])).toThrow('token id 1.5');
  });

  it('loads from the tokenizer.json path as well as the folder', () => {
    const t = Tokenizer.fromFile(fixturePath('qwen2-tokenizer/tokenizer.json'));
    expect(t.encode('Hello world')).toEqual([9707, 1879]);
    expect(t.eosToken).toBe('<|im_end|>'); // tokenizer_config.json beside it was read
  });

  it('explains what is wrong with a bad checkpoint', () => {
    expect(() => Tokenizer.fromFile('/no/such/dir')).toThrow('tokenizer path /no/such/dir does not exist');
    const json = JSON.parse(readFileSync(fixturePath('qwen2-tokenizer/tokenizer.json'), 'utf8'));
    const imagePad = json.added_tokens.find((t: { content: string }) => t.content === '<|image_pad|>');
    imagePad.special = false;
    expect(() => new Qwen2Tokenizer(json)).toThrow(
      'not a Qwen2-VL tokenizer: special token(s) <|image_pad|> missing',
    );
    json.added_tokens = json.added_tokens.filter((t: { content: string }) => t !== imagePad);
    expect(() => new Tokenizer(json)).toThrow(
      'tokenizer.json: id 151655 has no token (ids must be dense 0..151656)',
    );
  });
});
