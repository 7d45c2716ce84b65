// Embedding lookup (spec §3.1: E[input_ids], no scaling, no padding_idx) on the native kernels
// (native/src/cpu/embedding.h). The backward scatter-adds into a dense [V, H] gradient, like
// nn.Embedding without sparse=True; repeated ids accumulate in a fixed order (deterministic).
import { isGradEnabled } from '../autograd.js';
import { formatShape, record, saveAll, Tensor } from '../tensor.js';
import { checkInputs } from './checks.js';
import { nativeOp } from './native.js';

interface TableShape {
  vocab: number;
  hidden: number;
}

const embeddingKernel =
  nativeOp<(o: TableShape & { ids: Tensor; table: Tensor; out: Tensor }) => void>('embedding');
const embeddingBackwardKernel =
  nativeOp<(o: TableShape & { grad: Tensor; ids: Tensor; gradTable: Tensor }) => void>('embeddingBackward');

/** The native check, for the calls that skip the kernel: every id in [0, vocab). */
function checkIds(ids: Tensor, vocab: number): void {
  const values = ids.toTypedArray();
  const bad = values.findIndex((v) => v < 0 || v >= vocab);
  if (bad >= 0) {
    throw new RangeError(
      `embedding: ids[${bad}] = ${values[bad]} is out of range for a table of ${vocab} rows (ids must be in [0, ${vocab}))`,
    );
  }
}

/**
 * Rows of `table` [V, H] picked by `ids` (int32, any shape): the result is [...ids.shape, H]. An id
 * outside [0, V) throws a RangeError naming its (flat) position and value.
 */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  checkInputs('embedding', { ids }, 'int32');
  checkInputs('embedding', { table });
  if (ids.device !== table.device) {
    throw new Error(`embedding: ids are on ${ids.device} but table is on ${table.device}`);
  }
  if (table.rank !== 2) {
    throw new RangeError(`embedding: table ${formatShape(table.shape)} must be 2-D [vocab, hidden]`);
  }
  const [vocab, hidden] = table.shape;
  const empty = ids.size === 0 || hidden === 0;
  // The kernel checks the ids; with nothing to copy it is not called, so check them here.
  if (empty) checkIds(ids, vocab);
  const out = Tensor.empty([...ids.shape, hidden], { device: table.device });
  if (!empty) embeddingKernel({ ids, table, out, vocab, hidden });
  if (!isGradEnabled() || !table.requiresGrad) return out;
  const saved = saveAll(ids);
  const [sids] = saved;
  const tableShape = table.shape;
  const device = table.device;
  return record(
    'embedding',
    out,
    [null, table],
    (grad) => {
      if (empty) return [null, Tensor.zeros(tableShape, { device })];
      const gradTable = Tensor.empty(tableShape, { device });
      embeddingBackwardKernel({ grad, ids: sids, gradTable, vocab, hidden });
      return [null, gradTable];
    },
    saved,
  );
}
