// Reverse-mode autograd on a tape of nodes: each op that has an input requiring grad records a
// Node with its backward closure; Tensor.backward() walks the nodes in reverse topological order.
import { trackNode } from './scope.js';
import type { Tensor } from './tensor.js';

let gradEnabled = true;

/** Whether ops record the graph now. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the graph (evaluation, generation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Runs fn with graph recording on, even inside noGrad (torch.enable_grad): checkpoint's backward
 * recomputes its block this way while backward() itself runs under noGrad.
 */
export function enableGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** d loss / d inputs from d loss / d output; null where an input needs no gradient. */
export type BackwardFn = (grad: Tensor) => (Tensor | null)[];

let nodesCreated = 0;

/** @internal The id the next Node will get (ids grow in creation order). */
export function nextNodeId(): number {
  return nodesCreated;
}

export class Node {
  private released = false;
  /** Creation order: checkpoint() tells the nodes its block made from older ones by it. */
  readonly id = nodesCreated++;
  constructor(
    readonly name: string,
    readonly inputs: (Tensor | null)[],
    private readonly fn: BackwardFn,
    private readonly saved: Tensor[],
  ) {
    trackNode(this);
  }

  backward(grad: Tensor): (Tensor | null)[] {
    if (this.released) {
      throw new Error(
        `backward through ${this.name}: its graph was already freed by an earlier backward() or tidy() ` +
          '(pass { retainGraph: true } to backward() to go through a graph twice)',
      );
    }
    return this.fn(grad);
  }

  /** Frees the activations saved for backward; later backward calls through this node throw. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.saved) t.dispose();
    this.saved.length = 0;
  }

  get isReleased(): boolean {
    return this.released;
  }
}

/** Nodes reachable from `root`, inputs before the nodes that use them. */
export function topologicalOrder(root: Node): Node[] {
  const order: Node[] = [];
  const seen = new Set<Node>();
  // Iterative DFS (deep models would overflow a recursive one).
  const stack: [Node, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [node, expanded] = stack.pop()!;
    if (expanded) {
      order.push(node);
      continue;
    }
    if (seen.has(node)) continue;
    seen.add(node);
    stack.push([node, true]);
    for (const input of node.inputs)
      if (input?.gradFn && !seen.has(input.gradFn)) stack.push([input.gradFn, false]);
  }
  return order;
}
