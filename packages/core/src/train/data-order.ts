// The order a trainer visits its samples: seeded shuffles per epoch, with a position that a
// checkpoint saves so a resumed run sees exactly the samples the uninterrupted one would.
import { Random } from '../model/sampling.js';

export interface DataOrderState {
  epoch: number;
  index: number;
}

export class DataOrder {
  private order: number[] = [];
  private epoch = 0;
  private index = 0;

  constructor(
    private readonly size: number,
    private readonly seed: number,
  ) {
    if (size < 1) throw new RangeError('the training set is empty');
    this.shuffle();
  }

  private shuffle(): void {
    const rand = new Random((this.seed ^ (this.epoch * 0x9e3779b1)) >>> 0);
    this.order = Array.from({ length: this.size }, (_, i) => i);
    for (let i = this.size - 1; i > 0; i--) {
      const j = Math.floor(rand.next() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
  }

  /** The next `n` sample indices (crossing into a new, reshuffled epoch when needed). */
  take(n: number): number[] {
    const out: number[] = [];
    while (out.length < n) {
      if (this.index === this.size) {
        this.epoch += 1;
        this.index = 0;
        this.shuffle();
      }
      out.push(this.order[this.index++]);
    }
    return out;
  }

  state(): DataOrderState {
    return { epoch: this.epoch, index: this.index };
  }

  load(state: DataOrderState): void {
    this.epoch = state.epoch;
    this.index = state.index;
    this.shuffle();
  }
}
