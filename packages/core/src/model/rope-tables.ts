// The cos / sin tables of Qwen2-VL's two rotary embeddings, per position, for ops/rotary.ts:
// - M-RoPE of the LLM (spec §3.5): 3-D positions (temporal, height, width); frequency j takes its
//   position from the component whose mrope_section chunk holds j, in both halves of the head;
// - the vision tower's 2-D RoPE (spec §2.4): the first half of each half of the head rotates by
//   the patch row (hpos), the second half by the column (wpos).
// Angles are float32 products (HF does them in float32; Math.fround of the double product, exact
// for positions below 2^29, rounds once as a float32 multiply does), cos / sin of them rounded to
// float32.
// Position ids are integers and carry no gradient (spec §8.10), so this is plain TS, not a kernel:
// the positions are read on the host (the model passes them as a CPU tensor, since it computes them
// there) and the tables are uploaded once to `options.device`, where rotary() reads them.
// Model code (both schemes are Qwen2-VL's), hence here and not in the generic tensor layer.
import type { Device } from '../tensor/dtype.js';
import { checkInputs } from '../tensor/ops/checks.js';
import { formatShape, Tensor } from '../tensor/tensor.js';

const f32 = Math.fround;

/** Per-position tables [..., D] for rotary(). */
export interface CosSin {
  cos: Tensor;
  sin: Tensor;
}

/**
 * HF's default RoPE inverse frequencies in float32: 1 / theta^(arange(0, dim, 2) / dim), with the
 * exponent, the power and the reciprocal each rounded to float32 as torch does (dim / 2 values).
 * LLM: dim = head_dim, theta = rope_theta (spec §3.5); vision: dim = head_dim / 2, theta = 10000
 * (spec §2.4).
 */
export function ropeInvFreq(dim: number, theta: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0)
    throw new RangeError(`ropeInvFreq: dim must be a positive even integer (got ${dim})`);
  if (!(theta > 0)) throw new RangeError(`ropeInvFreq: theta must be positive (got ${theta})`);
  const out = new Float32Array(dim / 2);
  for (let j = 0; j < out.length; j++) out[j] = f32(1 / f32(theta ** f32((2 * j) / dim)));
  return out;
}

/** Where the tables go (default: the position ids' device); the model's device for a forward. */
export interface RopeTableOptions {
  device?: Device;
}

/**
 * cos / sin tables [rows, 2 * half] (both halves equal) of the angles positionAt(r, j) * freq[j],
 * each a float32 product as in HF. Positions are small integers shared by many rows, so cos and sin
 * are evaluated once per (position, frequency) and gathered (HF too gathers from a pos * f table);
 * `positions` holds every position used, for their range.
 */
function tables(
  rows: number,
  freq: Float32Array,
  positions: ArrayLike<number>,
  positionAt: (r: number, j: number) => number,
  shape: number[],
  device: Device,
): CosSin {
  const half = freq.length;
  let lo = 0;
  let hi = -1;
  for (let i = 0; i < positions.length; i++) {
    if (i === 0 || positions[i] < lo) lo = positions[i];
    if (i === 0 || positions[i] > hi) hi = positions[i];
  }
  const span = hi - lo + 1;
  // Dense positions (always, in practice): a [span, half] table; sparse huge ones: direct.
  const memo = span <= 4 * rows;
  const cosTab = new Float32Array(memo ? span * half : 0);
  const sinTab = new Float32Array(memo ? span * half : 0);
  for (let p = 0; memo && p < span; p++) {
    for (let j = 0; j < half; j++) {
      const a = f32((lo + p) * freq[j]);
      cosTab[p * half + j] = Math.cos(a);
      sinTab[p * half + j] = Math.sin(a);
    }
  }
  const cos = new Float32Array(rows * 2 * half);
  const sin = new Float32Array(rows * 2 * half);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < half; j++) {
      const p = positionAt(r, j);
      const a = memo ? 0 : f32(p * freq[j]);
      const c = memo ? cosTab[(p - lo) * half + j] : Math.cos(a);
      const s = memo ? sinTab[(p - lo) * half + j] : Math.sin(a);
      const at = r * 2 * half + j;
      cos[at] = c;
      cos[at + half] = c;
      sin[at] = s;
      sin[at + half] = s;
    }
  }
  return { cos: Tensor.from(cos, shape, { device }), sin: Tensor.from(sin, shape, { device }) };
}

/**
 * M-RoPE tables (spec §3.5) from position ids [3, B, S] int32 (temporal, height, width; from
 * get_rope_index, spec §3.6), the float32 inverse frequencies (head_dim / 2 values, ropeInvFreq)
 * and mrope_section (e.g. [16, 24, 24], summing to head_dim / 2): frequency j uses component c
 * for j in chunk c of the section, the same in both halves. Returns cos / sin [B, S, head_dim].
 * For text-only positions (all three components equal) this is ordinary 1-D RoPE.
 *
 * HF casts these tables to bf16 before rotating in bf16 (spec §8.3); these are the float32 values.
 */
export function mropeCosSin(
  positionIds: Tensor,
  invFreq: Float32Array,
  mropeSection: readonly number[],
  options: RopeTableOptions = {},
): CosSin {
  checkInputs('mropeCosSin', { positionIds }, 'int32');
  if (positionIds.rank !== 3 || positionIds.shape[0] !== 3) {
    throw new RangeError(`mropeCosSin: positionIds ${formatShape(positionIds.shape)} must be [3, B, S]`);
  }
  const half = invFreq.length;
  const sectionSum = mropeSection.reduce((a, b) => a + b, 0);
  if (
    mropeSection.length !== 3 ||
    mropeSection.some((x) => !Number.isInteger(x) || x < 0) ||
    sectionSum !== half
  ) {
    throw new RangeError(
      `mropeCosSin: mropeSection [${mropeSection.join(', ')}] must be 3 counts summing to the ${half} frequencies`,
    );
  }
  // component[j]: 0 (temporal), 1 (height) or 2 (width) for frequency j.
  const component = new Int32Array(half);
  for (let c = 0, j = 0; c < 3; c++) for (let n = 0; n < mropeSection[c]; n++) component[j++] = c;
  const [, batch, seq] = positionIds.shape;
  const rows = batch * seq;
  const pos = positionIds.toTypedArray();
  return tables(
    rows,
    invFreq,
    pos,
    (r, j) => pos[component[j] * rows + r],
    [batch, seq, 2 * half],
    options.device ?? positionIds.device,
  );
}

/**
 * The vision tower's 2-D RoPE tables (spec §2.4) from rot_pos_ids [N, 2] int32 ((hpos, wpos) per
 * patch, in merge-window order) for heads of headDim (a multiple of 4): with f = ropeInvFreq(headDim / 2,
 * theta) (headDim / 4 frequencies), the angles are a(n) = [hpos f, wpos f] and the table row is
 * [a(n), a(n)]. Returns cos / sin [N, headDim] (HF rotates in float32 with these, spec §8.2).
 */
export function visionRotaryCosSin(
  rotPosIds: Tensor,
  headDim: number,
  theta = 10000,
  options: RopeTableOptions = {},
): CosSin {
  checkInputs('visionRotaryCosSin', { rotPosIds }, 'int32');
  if (rotPosIds.rank !== 2 || rotPosIds.shape[1] !== 2) {
    throw new RangeError(`visionRotaryCosSin: rotPosIds ${formatShape(rotPosIds.shape)} must be [N, 2]`);
  }
  if (!Number.isInteger(headDim) || headDim < 4 || headDim % 4 !== 0) {
    throw new RangeError(`visionRotaryCosSin: headDim must be a positive multiple of 4 (got ${headDim})`);
  }
  const f = ropeInvFreq(headDim / 2, theta);
  const quarter = f.length;
  // Frequency j of the half: f[j] on hpos for j < quarter, f[j - quarter] on wpos after.
  const freq = new Float32Array(2 * quarter);
  freq.set(f, 0);
  freq.set(f, quarter);
  const n = rotPosIds.shape[0];
  const pos = rotPosIds.toTypedArray();
  return tables(
    n,
    freq,
    pos,
    (r, j) => pos[2 * r + (j < quarter ? 0 : 1)],
    [n, headDim],
    options.device ?? rotPosIds.device,
  );
}
