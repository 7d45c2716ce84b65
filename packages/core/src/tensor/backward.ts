import { noGrad, topologicalOrder } from './autograd.js';
import { accumulate, add, clone } from './ops/arithmetic.js';
import { keep, tidy } from './scope.js';
import { formatShape, Tensor } from './tensor.js';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * d root / d leaf for every leaf reachable from root, added to leaf.grad. Gradients of intermediate
 * tensors live only during the pass. The graph's saved activations are freed after it unless
 * retainGraph.
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
  tidy(() =>
    noGrad(() => {
      const start = seed ? seed.detach() : Tensor.from([1], root.shape, { device: root.device });
      if (!root.gradFn) {
        accumulateLeaf(root, start);
        return;
      }
      const grads = new Map<Tensor, Tensor>([[root, start]]);
      // Each node's output tensor, learnt from the inputs of the nodes after it (and the root).
      const outputOf = new Map([[root.gradFn, root]]);
      for (const node of topologicalOrder(root.gradFn).reverse()) {
        const g = grads.get(outputOf.get(node)!);
        if (!g) continue;
        const inputGrads = node.backward(g);
        node.inputs.forEach((input, i) => {
          const gi = inputGrads[i];
          if (!input || !gi) return;
          if (!sameShape(gi.shape, input.shape)) {
            throw new Error(
              `backward of ${node.name}: gradient ${formatShape(gi.shape)} for input ${formatShape(input.shape)}`,
            );
          }
          if (input.gradFn) {
            outputOf.set(input.gradFn, input);
            const prev = grads.get(input);
            grads.set(input, prev ? add(prev, gi) : gi);
          } else {
            accumulateLeaf(input, gi);
          }
        });
        if (!retainGraph) node.release();
      }
    }),
  );
}

/**
 * leaf.grad += g. The first time leaf.grad becomes a private copy: g may be shared with other
 * inputs' gradients (add's backward hands the same tensor to both), and leaf.grad is written in place.
 */
function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (leaf.grad && !leaf.grad.isDisposed) {
    accumulate(leaf.grad, g);
    return;
  }
  leaf.grad = keep(clone(g));
}
