// Hugging Face checkpoint folders: model.safetensors, or shards listed in model.safetensors.index.json.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import {
  readSafetensorsHeader,
  type SafetensorsEntry,
  type WriteOptions,
  writeSafetensors,
} from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Every tensor entry of a checkpoint folder (single file or sharded), by name. */
export function openCheckpoint(dir: string): Map<string, SafetensorsEntry> {
  const indexPath = join(dir, INDEX_FILE);
  if (existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new Error(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object')
      throw new Error(`${indexPath}: missing "weight_map"`);
    const entries = new Map<string, SafetensorsEntry>();
    for (const shard of new Set(Object.values(index.weight_map))) {
      const path = join(dir, shard);
      if (!existsSync(path)) throw new Error(`${indexPath}: shard ${shard} is missing`);
      for (const [name, entry] of readSafetensorsHeader(path).entries) entries.set(name, entry);
    }
    for (const [name, shard] of Object.entries(index.weight_map)) {
      if (!entries.has(name))
        throw new Error(`${indexPath}: tensor "${name}" is listed in ${shard} but not stored there`);
    }
    return entries;
  }
  const single = join(dir, SINGLE_FILE);
  if (!existsSync(single)) throw new Error(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}`);
  return readSafetensorsHeader(single).entries;
}

export interface SaveOptions extends WriteOptions {
  /** Shard above this many bytes (Hugging Face's default: 5 GB). */
  maxShardBytes?: number;
}

/** Writes tensors as model.safetensors, or as shards + index above maxShardBytes (the hub layout). */
export function saveCheckpointTensors(
  dir: string,
  tensors: [string, Tensor][],
  options: SaveOptions = {},
): string[] {
  const maxShard = options.maxShardBytes ?? 5e9;
  const elem = options.dtype === 'BF16' ? 2 : 4;
  const shards: [string, Tensor][][] = [[]];
  let shardBytes = 0;
  for (const item of tensors) {
    const bytes = item[1].size * elem;
    if (shardBytes > 0 && shardBytes + bytes > maxShard) {
      shards.push([]);
      shardBytes = 0;
    }
    shards.at(-1)!.push(item);
    shardBytes += bytes;
  }
  if (shards.length === 1) {
    writeSafetensors(join(dir, SINGLE_FILE), shards[0], options);
    return [SINGLE_FILE];
  }
  const pad = (n: number) => String(n).padStart(5, '0');
  const names = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    writeSafetensors(join(dir, names[i]), shard, options);
    for (const [name] of shard) weightMap[name] = names[i];
  });
  const totalSize = tensors.reduce((s, [, t]) => s + t.size * elem, 0);
  writeFileSync(
    join(dir, INDEX_FILE),
    `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`,
  );
  return [...names, INDEX_FILE];
}
