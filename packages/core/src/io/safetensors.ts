// safetensors: 8-byte little-endian header length, a JSON header ({ dtype, shape, data_offsets }
// per tensor, optional __metadata__), then raw little-endian data. Reading streams each tensor into
// native memory in chunks, so a multi-GB checkpoint never sits in JavaScript memory; F32, BF16 and
// F16 become float32 tensors, or bfloat16 ones on request (BF16 bits copied as they are). Writing goes to a temporary file renamed into place (atomic).
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { Device } from '../tensor/dtype.js';
import type { FloatDType } from '../tensor/ops/cast.js';
import { keep } from '../tensor/scope.js';
import { formatShape, type Shape, Tensor } from '../tensor/tensor.js';

const ELEMENT_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
/** Header size limit (the format's own reference implementation uses 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const CHUNK_BYTES = 16 * 1024 * 1024;

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  file: string;
}

export interface SafetensorsHeader {
  file: string;
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

/** Reads and validates the header of a .safetensors file; every problem names the file (and tensor). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new Error(`${file}: truncated safetensors file (${size} bytes, no header length)`);
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength > size - 8) {
      throw new Error(
        `${file}: header length ${headerLength} is longer than the file (${size - 8} bytes after the length)`,
      );
    }
    if (headerLength > MAX_HEADER_BYTES)
      throw new Error(`${file}: header of ${headerLength} bytes is larger than ${MAX_HEADER_BYTES}`);
    const headerBytes = Buffer.alloc(headerLength);
    readSync(fd, headerBytes, 0, headerLength, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch (e) {
      throw new Error(`${file}: the header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header))
      throw new Error(`${file}: the header is not a JSON object`);
    const dataStart = 8 + headerLength;
    const dataBytes = size - dataStart;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = (info ?? {}) as Record<string, string>;
        continue;
      }
      const where = `${file}: tensor "${name}"`;
      const {
        dtype,
        shape,
        data_offsets: offsets,
      } = (info ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof dtype !== 'string' || !(dtype in ELEMENT_BYTES))
        throw new Error(`${where} has unknown dtype ${JSON.stringify(dtype)}`);
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new Error(`${where} has an invalid shape ${JSON.stringify(shape)}`);
      }
      if (
        !Array.isArray(offsets) ||
        offsets.length !== 2 ||
        !offsets.every((o) => Number.isInteger(o) && o >= 0) ||
        offsets[0] > offsets[1]
      ) {
        throw new Error(`${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
      }
      if (offsets[1] > dataBytes) {
        throw new Error(
          `${where}: data_offsets [${offsets.join(', ')}] are out of range (the file holds ${dataBytes} data bytes)`,
        );
      }
      const expected = shape.reduce((a: number, b: number) => a * b, 1) * ELEMENT_BYTES[dtype];
      if (offsets[1] - offsets[0] !== expected) {
        throw new Error(
          `${where}: ${offsets[1] - offsets[0]} bytes for shape ${formatShape(shape)} of ${dtype} (expected ${expected})`,
        );
      }
      entries.set(name, {
        name,
        dtype,
        shape,
        begin: dataStart + offsets[0],
        end: dataStart + offsets[1],
        file,
      });
    }
    return { file, entries, metadata };
  } finally {
    closeSync(fd);
  }
}

// float16 -> float32 for every bit pattern, built on first use.
let halfTable: Float32Array | undefined;
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    halfTable[h] =
      exp === 0
        ? sign * 2 ** -14 * (frac / 1024)
        : exp === 31
          ? frac
            ? Number.NaN
            : sign * Number.POSITIVE_INFINITY
          : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return halfTable;
}

export interface ReadTensorOptions {
  device?: Device;
  /**
   * The tensor's dtype (default float32). 'bfloat16': BF16 on disk is copied bit for bit (raw
   * bytes staged on the host a chunk at a time, no float32 detour); F32 and F16 are rounded to
   * nearest even (F16 widens to float32 exactly first).
   */
  dtype?: FloatDType;
}

/** Reads one tensor into a new float32 (or bfloat16) tensor from F32, BF16 or F16, chunk by chunk. */
export function readTensor(entry: SafetensorsEntry, options: ReadTensorOptions = {}): Tensor {
  if (!['F32', 'BF16', 'F16'].includes(entry.dtype)) {
    throw new Error(
      `${entry.file}: tensor "${entry.name}" is ${entry.dtype}; model weights must be F32, BF16 or F16`,
    );
  }
  const dtype = options.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'bfloat16')
    throw new TypeError(
      `readTensor: dtype must be 'float32' or 'bfloat16' (got ${JSON.stringify(dtype)}) for tensor "${entry.name}"`,
    );
  const tensor = Tensor.empty(entry.shape, { device: options.device, dtype });
  const fd = openSync(entry.file, 'r');
  try {
    const inBytes = ELEMENT_BYTES[entry.dtype];
    const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, Math.max(entry.end - entry.begin, 8)));
    let outOffset = 0;
    for (let pos = entry.begin; pos < entry.end; ) {
      const want = Math.min(chunk.length, entry.end - pos);
      const got = readSync(fd, chunk, 0, want, pos);
      if (got !== want)
        throw new Error(
          `${entry.file}: tensor "${entry.name}" is truncated (read ${got} of ${want} bytes at ${pos})`,
        );
      let values: Float32Array | Uint16Array;
      if (dtype === 'bfloat16' && entry.dtype === 'BF16') {
        values = new Uint16Array(chunk.buffer, chunk.byteOffset, got / 2); // the bits as they are
      } else if (entry.dtype === 'F32') {
        values = new Float32Array(chunk.buffer, chunk.byteOffset, got / 4);
      } else {
        const raw = new Uint16Array(chunk.buffer, chunk.byteOffset, got / 2);
        values = new Float32Array(raw.length);
        if (entry.dtype === 'BF16') {
          const bits = new Uint32Array(values.buffer);
          for (let i = 0; i < raw.length; i++) bits[i] = raw[i] << 16; // bf16 is the top half of a float32
        } else {
          const table = halfToFloat();
          for (let i = 0; i < raw.length; i++) values[i] = table[raw[i]];
        }
      }
      if (dtype === 'bfloat16' && values instanceof Float32Array) values = toBf16(values);
      tensor.storage.write(values, outOffset);
      outOffset += values.byteLength;
      pos += got;
      if (got % inBytes !== 0)
        throw new Error(`${entry.file}: tensor "${entry.name}": chunk not aligned to ${entry.dtype}`);
    }
  } catch (e) {
    tensor.dispose();
    throw e;
  } finally {
    closeSync(fd);
  }
  return keep(tensor);
}

/** float32 -> bfloat16 bits, round to nearest even, NaN kept NaN (the native cast's formula). */
function toBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

export interface WriteOptions {
  dtype?: 'F32' | 'BF16';
  metadata?: Record<string, string>;
}

/**
 * Writes tensors (float32) to one .safetensors file, through a temporary file renamed into place,
 * so a crash never leaves a half-written file under the final name.
 */
export function writeSafetensors(
  file: string,
  tensors: [string, Tensor][],
  options: WriteOptions = {},
): void {
  const dtype = options.dtype ?? 'F32';
  const elem = ELEMENT_BYTES[dtype];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...options.metadata } };
  let offset = 0;
  for (const [name, t] of tensors) {
    if (t.dtype !== 'float32')
      throw new TypeError(
        `writeSafetensors: "${name}" has dtype ${t.dtype}; only float32 tensors are written`,
      );
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + t.size * elem] };
    offset += t.size * elem;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // data starts 8-byte aligned
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    writeSync(fd, length);
    writeSync(fd, Buffer.from(json, 'utf8'));
    const chunkElems = CHUNK_BYTES / 4;
    for (const [, t] of tensors) {
      for (let start = 0; start < t.size; start += chunkElems) {
        const values = new Float32Array(Math.min(chunkElems, t.size - start));
        t.storage.read(values, (t.offset + start) * 4);
        const bytes = dtype === 'F32' ? values : toBf16(values);
        writeSync(fd, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      }
    }
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** The shape a loader expects, for "missing or misshapen tensor" errors. */
export function checkEntryShape(entry: SafetensorsEntry, shape: Shape): void {
  if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
    throw new Error(
      `${entry.file}: tensor "${entry.name}" has shape ${formatShape(entry.shape)}; the config implies ${formatShape(shape)}`,
    );
  }
}
