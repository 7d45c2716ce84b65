// The masked row scatter that merges the vision tower's features into the token embeddings (spec
// §4): rows of `base` whose mask is 1 are replaced, in row order, by the rows of `source`. On the
// native kernels (native/src/cpu/masked_scatter.h); the kernel checks the mask (0 / 1 only, as
// many ones as source has rows) before it runs.
import { isGradEnabled } from '../autograd.js';
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { checkInputs } from './checks.js';
import { nativeOp } from './native.js';

interface RowsShape {
  rows: number;
  hidden: number;
}

const scatterKernel =
  nativeOp<(o: RowsShape & { base: Tensor; mask: Tensor; source: Tensor; out: Tensor }) => void>(
    'maskedScatterRows',
  );
const scatterBackwardKernel =
  nativeOp<(o: RowsShape & { grad: Tensor; mask: Tensor; gradBase?: Tensor; gradSource?: Tensor }) => void>(
    'maskedScatterRowsBackward',
  );

const rowsText = (n: number) => `${n} ${n === 1 ? 'row' : 'rows'}`;

/** The mask's values (for the calls that skip the kernel): 0 / 1, and the number of ones. */
function countOnes(mask: Tensor): number {
  let ones = 0;
  const values = mask.toTypedArray();
  values.forEach((v, r) => {
    if (v !== 0 && v !== 1) throw new RangeError(`maskedScatterRows: mask[${r}] = ${v} is not 0 or 1`);
    ones += v;
  });
  return ones;
}

/**
 * `base` [N, H] with the rows where `mask` (int32 [N], 0 / 1) is 1 replaced, in order, by the rows of
 * `source` [M, H]; M must equal the number of ones. As HF's masked_scatter of image features at the
 * `<|image_pad|>` positions: the replaced rows' gradient goes to `source`, none to `base` (spec §4.3).
 */
export function maskedScatterRows(base: Tensor, mask: Tensor, source: Tensor): Tensor {
  checkInputs('maskedScatterRows', { base, source });
  checkInputs('maskedScatterRows', { mask }, 'int32');
  if (mask.device !== base.device) {
    throw new Error(`maskedScatterRows: mask is on ${mask.device} but base is on ${base.device}`);
  }
  if (base.rank !== 2 || source.rank !== 2 || source.shape[1] !== base.shape[1]) {
    throw new RangeError(
      `maskedScatterRows: base ${formatShape(base.shape)} and source ${formatShape(source.shape)} must be 2-D with the same width`,
    );
  }
  if (mask.rank !== 1 || mask.shape[0] !== base.shape[0]) {
    throw new RangeError(
      `maskedScatterRows: mask ${formatShape(mask.shape)} must have one value per row of base ${formatShape(base.shape)}`,
    );
  }
  const [rows, hidden] = base.shape;
  const empty = rows === 0 || hidden === 0;
  if (empty) {
    const ones = countOnes(mask);
    if (ones !== source.shape[0]) {
      throw new RangeError(
        `maskedScatterRows: the mask selects ${rowsText(ones)} but source has ${rowsText(source.shape[0])}; they must match`,
      );
    }
  }
  const device = { device: base.device };
  const out = Tensor.empty(base.shape, device);
  if (!empty) scatterKernel({ base, mask, source, out, rows, hidden });
  if (!isGradEnabled() || !(base.requiresGrad || source.requiresGrad)) return out;
  const wantBase = base.requiresGrad;
  const wantSource = source.requiresGrad;
  const sourceShape = source.shape;
  const saved = saveAll(mask);
  const [smask] = saved;
  return record(
    'maskedScatterRows',
    out,
    [base, null, source],
    (grad) => {
      if (empty) {
        return [
          wantBase ? Tensor.zeros(grad.shape, device) : null,
          null,
          wantSource ? Tensor.zeros(sourceShape, device) : null,
        ];
      }
      const gradBase = wantBase ? Tensor.empty(grad.shape, device) : undefined;
      const gradSource = wantSource ? Tensor.empty(sourceShape, device) : undefined;
      scatterBackwardKernel({ grad, mask: smask, gradBase, gradSource, rows, hidden });
      return [gradBase ?? null, null, gradSource ?? null];
    },
    saved,
  );
}
