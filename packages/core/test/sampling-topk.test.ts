// Top-k / top-p sampling selects its candidates without sorting the vocabulary (model/sampling.ts,
// `largest`): it must pick exactly the tokens, in exactly the order, of the full sort by
// (logit descending, index ascending), so seeded sampling is unchanged.
import { describe, expect, it } from 'vitest';
import { Random, type SamplingConfig, sampleToken } from '../src/index.js';
import { largest } from '../src/model/sampling.js';

/** The reference: the whole vocabulary sorted, then the top-k / top-p rules as before. */
function reference(logits: Float32Array, config: SamplingConfig, rand: Random) {
  const v = logits.length;
  const t = config.doSample ? (config.temperature ?? 1) : 1;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < v; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < v; i++) sum += Math.exp((logits[i] - max) / t);
  const logZ = Math.log(sum);
  const logprobOf = (i: number) => (logits[i] - max) / t - logZ;
  const topK = config.topK && config.topK > 0 ? Math.min(config.topK, v) : v;
  const topP = config.topP ?? 1;
  let candidates = Array.from({ length: v }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  candidates = candidates.slice(0, topK);
  if (topP < 1) {
    let mass = 0;
    let keep = 0;
    for (const i of candidates) {
      mass += Math.exp(logprobOf(i));
      keep++;
      if (mass >= topP) break;
    }
    candidates = candidates.slice(0, keep);
  }
  let total = 0;
  for (const i of candidates) total += Math.exp(logprobOf(i));
  let u = rand.next() * total;
  for (const i of candidates) {
    u -= Math.exp(logprobOf(i));
    if (u <= 0) return { token: i, logprob: logprobOf(i) };
  }
  const last = candidates[candidates.length - 1];
  return { token: last, logprob: logprobOf(last) };
}

function logitsOf(v: number, seed: number, kind: 'smooth' | 'ties' | 'masked'): Float32Array {
  const r = new Random(seed);
  const out = new Float32Array(v);
  for (let i = 0; i < v; i++) {
    const x = r.next();
    if (kind === 'smooth') out[i] = (x - 0.5) * 12;
    else if (kind === 'ties')
      out[i] = Math.round(x * 6) / 2; // 13 distinct values: many ties
    else out[i] = x < 0.7 ? Number.NEGATIVE_INFINITY : (x - 0.85) * 20;
  }
  return out;
}

describe('top-k / top-p candidates without a full sort', () => {
  it('largest(k) is the prefix of the full sort, ties by index', () => {
    for (const kind of ['smooth', 'ties', 'masked'] as const) {
      for (const v of [1, 7, 100, 5000]) {
        const logits = logitsOf(v, v * 31 + kind.length, kind);
        const full = Array.from({ length: v }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
        for (const k of [1, 2, 5, 50, 256, v - 1, v]) {
          if (k < 1 || k > v) continue;
          expect(largest(logits, k), `${kind} v=${v} k=${k}`).toEqual(full.slice(0, k));
        }
      }
    }
  });

  it('sampling draws the same tokens and log-probs as sorting the whole vocabulary', () => {
    const configs: SamplingConfig[] = [
      { doSample: true, topK: 50 },
      { doSample: true, topK: 50, topP: 0.9, temperature: 0.7 },
      { doSample: true, topP: 0.95 },
      { doSample: true, topP: 0.999, temperature: 1.5 },
      { doSample: true, topK: 3 },
      { doSample: true, topK: 4000, topP: 0.5 },
    ];
    for (const kind of ['smooth', 'ties', 'masked'] as const) {
      const logits = logitsOf(5000, 7 + kind.length, kind);
      for (const [c, config] of configs.entries()) {
        const a = new Random(c + 1);
        const b = new Random(c + 1);
        for (let draw = 0; draw < 20; draw++) {
          expect(sampleToken(logits, config, a), `${kind} ${JSON.stringify(config)} draw ${draw}`).toEqual(
            reference(logits, config, b),
          );
        }
      }
    }
  });
});
