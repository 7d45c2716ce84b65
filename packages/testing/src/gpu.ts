// GPU suites: run where a CUDA build of @othink/native sees a GPU, skip elsewhere with a one-line
// reason, and fail instead of skipping when OTHINK_REQUIRE_GPU=1 (`pnpm test:gpu`), so a GPU
// machine can never pass by skipping. The addon is passed in (this package does not depend on it):
//
//   import * as native from '@othink/native';
//   describeGpu(native, 'rmsNorm on CUDA', () => { ... });
import { describe, it } from 'vitest';

/** What these helpers read of @othink/native. */
export interface NativeGpuProbe {
  buildInfo(): { cuda: boolean };
  cuda?: { deviceInfo(): { available: boolean; error?: string } };
}

/** Why the GPU suites cannot run here, or null when they can. */
export function gpuUnavailableReason(native: NativeGpuProbe): string | null {
  if (!native.buildInfo().cuda) return 'this build of @othink/native has no CUDA (build with OTHINK_CUDA=1)';
  const info = native.cuda?.deviceInfo();
  if (!info?.available) return `no usable CUDA device${info?.error ? ` (${info.error})` : ''}`;
  return null;
}

/** Whether this run must fail rather than skip the GPU suites. */
export const requireGpu = ['1', 'true', 'yes'].includes(
  String(process.env.OTHINK_REQUIRE_GPU ?? '').toLowerCase(),
);

/** `describe` for a suite that needs a GPU: skipped with the reason, or failing under OTHINK_REQUIRE_GPU=1. */
export function describeGpu(native: NativeGpuProbe, name: string, fn: () => void): void {
  const reason = gpuUnavailableReason(native);
  if (reason === null) {
    describe(name, fn);
  } else if (requireGpu) {
    describe(name, () => {
      it('has a GPU', () => {
        throw new Error(`OTHINK_REQUIRE_GPU=1, but ${reason}`);
      });
    });
  } else {
    describe.skip(`${name} (skipped: ${reason})`, fn);
  }
}
