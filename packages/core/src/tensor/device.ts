// Whether a device can hold tensors in this process: asked once, before any work, so a run on a
// machine without a CUDA build or without a visible GPU stops with one line instead of failing at
// its first allocation (or after minutes of data loading).
import { buildInfo, cuda } from '@othink/native';
import type { Device } from './dtype.js';

/** Why `device` cannot be used here, or null when it can. */
export function deviceUnavailableReason(device: Device): string | null {
  if (device === 'cpu') return null;
  if (device !== 'cuda') return `unknown device '${device}' (expected 'cpu' or 'cuda')`;
  if (!buildInfo().cuda) {
    return 'this build of @othink/native has no CUDA support: rebuild it with `OTHINK_CUDA=1 pnpm build` on a machine with a CUDA toolkit';
  }
  const info = cuda?.deviceInfo();
  if (!info?.available) {
    return `no usable CUDA device (${info?.error ?? `${info?.deviceCount ?? 0} devices visible`}); check nvidia-smi and CUDA_VISIBLE_DEVICES`;
  }
  return null;
}

/** Throws `where: <reason>` when `device` cannot be used here. */
export function assertDeviceAvailable(device: Device, where: string): void {
  const reason = deviceUnavailableReason(device);
  if (reason !== null) throw new Error(`${where}: ${reason}`);
}
