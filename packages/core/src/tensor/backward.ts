import { noGrad, topologicalOrder } from './autograd.js';
import { accumulate, add, clone } from './ops/arithmetic.js';
import { keep, tidy } from './scope.js';
import { formatShape, Tensor } from './tensor.js';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * d root / d leaf for every leaf reachable from root, added to leaf.grad. Gradients of intermediate
 * tensors live only during the pass: each node's backward runs in its own tidy (its temporaries go
 * when it returns), and the gradient of a node's output is freed as soon as that node has passed it
 * on, so the pass holds the pending gradients, not every gradient it made. The graph's saved
 * activations are freed after it unless retainGraph.
 */
export function runBackward(root: Tensor, seed: Tensor | undefined, retainGraph: boolean): void {
  root.assertUsable('backward');
  if (!root.requiresGrad) {
    throw new Error(
      `backward: ${root.describe()} does not require grad (no input of its computation requires grad)`,
    );
  }
  if (!seed && root.size !== 1) {
    throw new Error(
      `backward: ${root.describe()} is not a scalar; pass the gradient of the loss with respect to it`,
    );
  }
  if (seed && !sameShape(seed.shape, root.shape)) {
    throw new Error(
      `backward: gradient ${formatShape(seed.shape)} does not match the tensor ${formatShape(root.shape)}`,
    );
  }
  if (seed && seed.device !== root.device) {
    throw new Error(`backward: gradient is on ${seed.device} but the tensor is on ${root.device}`);
  }
  tidy(() =>
    noGrad(() => {
      const start = seed ? seed.detach() : Tensor.from([1], root.shape, { device: root.device });
      propagate(root, start, retainGraph, new Set());
    }),
  );
}

/**
 * @internal checkpoint()'s backward: d root / d input for each of `inputs` (leaves of root's
 * graph: the detached copies its recomputation ran on), returned instead of added to their .grad
 * (null where root does not depend on one); every other leaf accumulates into .grad as in
 * runBackward. The graph is freed as the pass goes. Runs inside another backward pass: it keeps
 * its own pending gradients, and keep() takes a leaf's new .grad out of every enclosing tidy.
 */
export function backwardToInputs(root: Tensor, seed: Tensor, inputs: Tensor[]): (Tensor | null)[] {
  if (!sameShape(seed.shape, root.shape)) {
    throw new Error(
      `backward: gradient ${formatShape(seed.shape)} does not match the tensor ${formatShape(root.shape)}`,
    );
  }
  return tidy(() =>
    noGrad(() => {
      const captured = propagate(root, seed.detach(), false, new Set(inputs));
      return inputs.map((t) => captured.get(t) ?? null);
    }),
  );
}

/**
 * The pass itself, from `start` (d root / d root, a handle it owns). Gradients of the tensors in
 * `capture` are summed like those of intermediate tensors (the same add, in the same order, so a
 * checkpointed block hands its input bit for bit the gradient the whole graph would) and returned;
 * other leaves accumulate into .grad.
 */
function propagate(
  root: Tensor,
  start: Tensor,
  retainGraph: boolean,
  capture: Set<Tensor>,
): Map<Tensor, Tensor> {
  // Pending gradients, each held through a handle of its own (a view where a backward handed
  // one tensor to several inputs), so that freeing one never frees another.
  const grads = new Map<Tensor, Tensor>([[root, start]]);
  if (!root.gradFn) {
    if (!capture.has(root)) {
      grads.delete(root);
      accumulateLeaf(root, start, false);
    }
    return grads;
  }
  // Each node's output tensor, learnt from the inputs of the nodes after it (and the root).
  const outputOf = new Map([[root.gradFn, root]]);
  for (const node of topologicalOrder(root.gradFn).reverse()) {
    const output = outputOf.get(node)!;
    const g = grads.get(output);
    if (!g) continue;
    grads.delete(output);
    const inputGrads = tidy(() => node.backward(g));
    node.inputs.forEach((input, i) => {
      const gi = inputGrads[i];
      if (!input || !gi) return;
      if (!sameShape(gi.shape, input.shape)) {
        throw new Error(
          `backward of ${node.name}: gradient ${formatShape(gi.shape)} for input ${formatShape(input.shape)}`,
        );
      }
      if (input.gradFn || capture.has(input)) {
        if (input.gradFn) outputOf.set(input.gradFn, input);
        const prev = grads.get(input);
        if (prev) {
          grads.set(input, add(prev, gi));
          prev.dispose();
        } else {
          grads.set(input, gi.view(gi.shape, gi.offset));
        }
      } else {
        // A fresh tensor this backward made for this input alone can become leaf.grad as is.
        const exclusive = gi !== g && inputGrads.indexOf(gi) === inputGrads.lastIndexOf(gi);
        accumulateLeaf(input, gi, exclusive);
      }
    });
    // Every handle the node's backward returned, and its output gradient, are done with.
    g.dispose();
    for (const gi of inputGrads) gi?.dispose();
    if (!retainGraph) node.release();
  }
  // What is left: the captured inputs' gradients (every node's output gradient was passed on).
  return grads;
}

/**
 * leaf.grad += g. The first time leaf.grad becomes a private copy: g may be shared with other
 * inputs' gradients (add's backward hands the same tensor to both), and leaf.grad is written in
 * place. When g is `exclusive` (made by the backward for this input only) and no other handle
 * shares its memory, leaf.grad takes its memory instead of a copy.
 */
function accumulateLeaf(leaf: Tensor, g: Tensor, exclusive: boolean): void {
  if (leaf.grad && !leaf.grad.isDisposed) {
    accumulate(leaf.grad, g);
    return;
  }
  leaf.grad = keep(exclusive && !g.sharesMemory ? g.view(g.shape, g.offset) : clone(g));
}
