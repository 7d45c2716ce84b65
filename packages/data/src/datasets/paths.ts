// Image paths of a dataset resolve inside its folder only.
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';

function inside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * The absolute path of `path` (relative to `root`, or absolute) after checking that it stays inside
 * `root`: no `..` escape, no absolute path elsewhere, and, when the file exists, no symlink that
 * leads out. Throws an Error naming the path otherwise.
 */
export function resolveInside(root: string, path: string): string {
  if (typeof path !== 'string' || path.length === 0) throw new Error('image path is empty');
  if (path.includes('\0')) throw new Error(`image path ${JSON.stringify(path)} contains a NUL byte`);
  const absRoot = resolve(root);
  const target = resolve(absRoot, path);
  if (!inside(absRoot, target)) {
    throw new Error(`image path ${JSON.stringify(path)} resolves outside the dataset folder ${absRoot}`);
  }
  let realTarget: string;
  try {
    realTarget = realpathSync(target);
  } catch {
    return target; // does not exist: the caller reports the missing file
  }
  const realRoot = realpathSync(absRoot);
  if (!inside(realRoot, realTarget)) {
    throw new Error(
      `image path ${JSON.stringify(path)} is a link to ${realTarget}, outside the dataset folder ${realRoot}`,
    );
  }
  return target;
}
