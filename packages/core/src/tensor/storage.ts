import { type NativeStorage, Storage } from '@othink/native';
import type { Device } from './dtype.js';

/**
 * A native memory block shared by a tensor, its views and the autograd graph: freed when the last
 * holder releases it, so disposing a tensor that backward still needs is safe.
 */
export class StorageRef {
  private refs = 1;
  constructor(readonly native: NativeStorage) {}

  static allocate(bytes: number, device: Device, zero: boolean): StorageRef {
    return new StorageRef(new Storage(bytes, device, zero));
  }

  retain(): this {
    this.refs += 1;
    return this;
  }

  release(): void {
    this.refs -= 1;
    if (this.refs === 0) this.native.dispose();
  }

  /** More than one holder: writing in place would be seen by another tensor. */
  get shared(): boolean {
    return this.refs > 1;
  }
}
