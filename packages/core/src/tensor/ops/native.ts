import { ops } from '@othink/native';

/**
 * The native kernel behind an op, typed by its caller: `nativeOp<(o: {...}) => void>('rmsNorm')`.
 * Fails at load time with the op's name if the addon lacks it (an out-of-date build).
 */
export function nativeOp<F extends (options: never) => unknown>(name: string): F {
  const fn = ops[name];
  if (typeof fn !== 'function') {
    throw new Error(`@othink/native has no op '${name}': rebuild the addon (pnpm build)`);
  }
  return fn as unknown as F;
}
