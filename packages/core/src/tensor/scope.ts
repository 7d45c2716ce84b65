// Deterministic memory: tensors created inside tidy(fn) are disposed when fn returns, except the
// ones it returns (which move to the enclosing scope). Autograd nodes created there and not needed
// by the returned tensors release their saved activations too.
import type { Node } from './autograd.js';
import type { Tensor } from './tensor.js';

interface Scope {
  tensors: Set<Tensor>;
  nodes: Set<Node>;
}

const scopes: Scope[] = [];

/** @internal Called by every new tensor. */
export function track(t: Tensor): void {
  scopes.at(-1)?.tensors.add(t);
}

/** @internal Called by every new autograd node. */
export function trackNode(n: Node): void {
  scopes.at(-1)?.nodes.add(n);
}

/** Removes a tensor from every scope so tidy never disposes it. Returns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.tensors.delete(t);
  return t;
}

/** The tensors found in a value returned from tidy: a tensor, or arrays / plain objects of them. */
function collect(value: unknown, out: Set<Tensor>, isTensor: (v: unknown) => v is Tensor, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  // Typed arrays (logits read back, ids) hold numbers only: never walk their elements.
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return;
  const items = Array.isArray(value)
    ? value
    : value instanceof Map
      ? [...value.values()]
      : Object.values(value);
  for (const v of items) collect(v, out, isTensor, depth + 1);
}

let isTensorFn: ((v: unknown) => v is Tensor) | undefined;
/** @internal tensor.ts registers its instanceof test (avoids an import cycle). */
export function setTensorCheck(fn: (v: unknown) => v is Tensor): void {
  isTensorFn = fn;
}

/**
 * Runs fn and disposes every tensor it created except those in its result. Synchronous functions
 * only: an async fn would return before its tensors are made.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: new Set(), nodes: new Set() };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new Error('tidy: fn must be synchronous (it returned a Promise)');
  const kept = new Set<Tensor>();
  collect(result, kept, isTensorFn!);
  // Graph nodes the kept tensors can still backpropagate through stay alive.
  const liveNodes = new Set<Node>();
  const stack = [...kept].map((t) => t.gradFn).filter((n): n is Node => n !== null);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (liveNodes.has(n)) continue;
    liveNodes.add(n);
    for (const input of n.inputs) if (input?.gradFn) stack.push(input.gradFn);
  }
  for (const n of scope.nodes) if (!liveNodes.has(n)) n.release();
  for (const t of scope.tensors) if (!kept.has(t)) t.dispose();
  const parent = scopes.at(-1);
  if (parent) {
    for (const t of kept) if (scope.tensors.has(t)) parent.tensors.add(t);
    for (const n of liveNodes) if (scope.nodes.has(n)) parent.nodes.add(n);
  }
  return result;
}
