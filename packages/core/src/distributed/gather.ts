// Gathering small JSON values (completion records, texts) from every rank: the collectives move
// numbers, so each rank's value travels as its UTF-8 bytes packed into int32 words, padded to the
// longest rank's length.
import type { ProcessGroup } from './group.js';

/** Every rank's `value`, in rank order (JSON round trip: plain data only). Called by every rank. */
export function allGatherJson<T>(group: ProcessGroup, value: T): T[] {
  // One process: nothing to move, and no JSON round trip to change the value.
  if (group.worldSize === 1) return [value];
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const lengths = group.allGather(Int32Array.of(bytes.length));
  const words = Math.ceil(Math.max(...lengths) / 4);
  const padded = new Uint8Array(words * 4);
  padded.set(bytes);
  const all = group.allGather(new Int32Array(padded.buffer));
  const decoder = new TextDecoder();
  return Array.from(lengths, (length, r) =>
    JSON.parse(decoder.decode(new Uint8Array(all.buffer, r * words * 4, length))),
  );
}
