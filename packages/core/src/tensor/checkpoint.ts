// Activation checkpointing (torch.utils.checkpoint, non-reentrant semantics; TRL's
// gradient_checkpointing): a block's activations are not kept for backward but recomputed when
// backward reaches the block, trading one more forward of the block for its activations' memory.
import { enableGrad, isGradEnabled, Node, nextNodeId } from './autograd.js';
import { backwardToInputs } from './backward.js';
import { keep, tidy } from './scope.js';
import { formatShape, Tensor } from './tensor.js';

/** A tensor input of a checkpointed block; undefined passes through (an optional mask). */
export type CheckpointInput = Tensor | undefined;

/** A leaf over t's memory that requires grad: what the block runs on, so its graph stops there. */
function leafCopy(t: Tensor): Tensor {
  const copy = t.detach();
  copy.requiresGrad = true;
  return copy;
}

/**
 * Checks what fn returned, and that its graph reaches no node made before the block (`firstNode`):
 * such a tensor (requiring grad, computed outside, read from fn's closure rather than `inputs`)
 * would take the inner backward pass into the outer graph, which would then run it twice.
 */
function checkOutput(out: unknown, firstNode: number, where: string): Tensor {
  if (!(out instanceof Tensor)) {
    throw new TypeError(`checkpoint: fn must return one Tensor (${where} it returned ${typeof out})`);
  }
  const seen = new Set<Node>();
  const stack = out.gradFn ? [out.gradFn] : [];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const input of node.inputs) {
      const fnNode = input?.gradFn;
      if (!fnNode) continue;
      if (fnNode.id < firstNode) {
        throw new Error(
          `checkpoint: the block reads ${input.describe()} made by ${fnNode.name} outside it, which requires ` +
            'grad; pass it in `inputs` (tensors a block closes over must be leaves, like parameters)',
        );
      }
      stack.push(fnNode);
    }
  }
  return out;
}

/**
 * `fn(...inputs)` without keeping the block's activations: returns the output recorded as ONE
 * node whose backward runs fn again (grad on, over leaf copies of the inputs that require grad),
 * backpropagates the incoming gradient through the recomputed graph, adds the gradients of the
 * leaves fn closes over (parameters) to their .grad as the plain run would, and hands the inputs'
 * gradients on; the recomputed activations are freed as that inner pass goes.
 *
 * Under noGrad it is `fn(...inputs)`. fn must be a pure function of its inputs and of leaves:
 * every tensor it reads that is computed and requires grad must come through `inputs`, and tensors
 * it reads from its closure must live until backward (parameters do). It is run twice, so it must
 * give the same result both times; nothing in this code base draws random numbers in a forward
 * (Qwen2-VL's attention_dropout is 0 and no dropout op exists), so no RNG state is replayed.
 * One output: the decoder layers and vision blocks return their hidden states only (the KV cache
 * is for generation, where nothing is checkpointed).
 *
 * Gradients are bitwise those of the plain run (the parameters' and the inputs') when each input
 * is a computed tensor used only inside the block, as a layer's hidden states are: the inner pass
 * visits the block's ops in the order the whole graph would and sums each input's gradients with
 * the same adds. Otherwise the block's part of an input's gradient arrives as one sum: an input
 * also used outside the block, or a leaf input whose .grad already holds a value, may then differ
 * in the last bits (floating-point addition is not associative).
 */
export function checkpoint<const A extends CheckpointInput[]>(
  // NoInfer: the inputs give the argument types (fn may take fewer, e.g. none).
  fn: (...args: NoInfer<A>) => Tensor,
  inputs: A,
): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  inputs.forEach((t, i) => {
    if (t !== undefined && !(t instanceof Tensor)) {
      throw new TypeError(`checkpoint: inputs[${i}] is not a Tensor (got ${typeof t})`);
    }
    t?.assertUsable('checkpoint', `inputs[${i}]`);
  });
  const wantGrad = inputs.map((t) => t?.requiresGrad ?? false);
  // Recording the block's graph (and freeing it at once) is how we learn whether the output
  // requires grad, which it does if only a parameter fn closes over does (non-reentrant semantics).
  // The activations live only until this tidy returns, as they would under noGrad.
  const first = nextNodeId();
  const { value, requiresGrad } = tidy(() => {
    const args = inputs.map((t, i) => (t && wantGrad[i] ? leafCopy(t) : t)) as unknown as A;
    const out = checkOutput(fn(...args), first, 'the first time');
    return { value: out.detach(), requiresGrad: out.requiresGrad };
  });
  if (!requiresGrad) return value;
  // Held for the recomputation: views that outlive tidy() and dispose() of the inputs until the
  // node is released (after backward, or when a tidy drops the output).
  const saved = inputs.map((t) => (t ? keep(t.view(t.shape, t.offset)) : undefined));
  const shape = value.shape;
  value.requiresGrad = true;
  value.gradFn = new Node(
    'checkpoint',
    inputs.map((t, i) => (t && wantGrad[i] ? t : null)),
    (grad) =>
      // backward() runs nodes under noGrad: the recomputation must record its graph.
      enableGrad(() =>
        tidy(() => {
          const leaves = saved.map((t, i) => (t && wantGrad[i] ? leafCopy(t) : t));
          const firstAgain = nextNodeId();
          // The inner tidy drops every handle of the recomputed intermediates: the graph's saved
          // views alone keep their memory, and the inner pass frees them node by node.
          const out = tidy(() => checkOutput(fn(...(leaves as unknown as A)), firstAgain, 'recomputed,'));
          if (out.shape.length !== shape.length || out.shape.some((d, i) => d !== shape[i])) {
            throw new Error(
              `checkpoint: the recomputed output is ${formatShape(out.shape)}, the first run gave ${formatShape(shape)} (fn must give the same result twice)`,
            );
          }
          if (!out.requiresGrad) {
            throw new Error('checkpoint: the recomputed output does not require grad though the first did');
          }
          const captured = leaves.filter((t, i): t is Tensor => t !== undefined && wantGrad[i]);
          const grads = backwardToInputs(out, grad, captured);
          let next = 0;
          return wantGrad.map((w) => (w ? grads[next++] : null));
        }),
      ),
    saved.filter((t): t is Tensor => t !== undefined),
  );
  return value;
}
