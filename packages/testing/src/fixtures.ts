// Reads the reference fixtures (safetensors written by the float64 PyTorch reference).
// The folder comes from OTHINK_FIXTURES, default: the project's copy in <repo>/fixtures.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type FixtureArray = Float64Array | Float32Array | BigInt64Array | Int32Array | Uint8Array;

export interface FixtureTensor {
  dtype: string;
  shape: number[];
  data: FixtureArray;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The fixture folder: `OTHINK_FIXTURES` or `<repo>/fixtures`. */
export function fixturesDir(): string {
  return resolve(process.env.OTHINK_FIXTURES ?? join(repoRoot, 'fixtures'));
}

/**
 * Absolute path of a file inside the fixture folder (an absolute path is taken as it is: reference
 * files made elsewhere, e.g. by scripts/transformers_reference.py); throws a readable error if it is missing.
 */
export function fixturePath(relative: string): string {
  const path = isAbsolute(relative) ? relative : join(fixturesDir(), relative);
  if (!existsSync(path)) {
    throw new Error(
      `fixture ${relative} not found in ${fixturesDir()} (set OTHINK_FIXTURES to a fixture folder)`,
    );
  }
  return path;
}

const typedArrayOf: Record<
  string,
  { bytes: number; make: (b: ArrayBuffer, o: number, n: number) => FixtureArray }
> = {
  F64: { bytes: 8, make: (b, o, n) => new Float64Array(b, o, n) },
  F32: { bytes: 4, make: (b, o, n) => new Float32Array(b, o, n) },
  I64: { bytes: 8, make: (b, o, n) => new BigInt64Array(b, o, n) },
  I32: { bytes: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  U8: { bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
};

/** Every tensor of a fixture safetensors file, by name. */
export function loadFixture(relative: string): Map<string, FixtureTensor> {
  const path = fixturePath(relative);
  const file = readFileSync(path);
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLength;
  const tensors = new Map<string, FixtureTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const kind = typedArrayOf[info.dtype];
    if (!kind)
      throw new Error(
        `${path}: tensor ${name} has dtype ${info.dtype}, which the fixture reader does not know`,
      );
    const [begin, end] = info.data_offsets;
    const count = (end - begin) / kind.bytes;
    // Copy into a fresh, aligned buffer: offsets inside the file need not be aligned for every type.
    const bytes = new Uint8Array(end - begin);
    bytes.set(file.subarray(base + begin, base + end));
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data: kind.make(bytes.buffer, 0, count) });
  }
  return tensors;
}

/** Convenience accessors that fail with the tensor's name when it is missing. */
export class Fixture {
  readonly tensors: Map<string, FixtureTensor>;
  constructor(readonly name: string) {
    this.tensors = loadFixture(name);
  }

  get(key: string): FixtureTensor {
    const t = this.tensors.get(key);
    if (!t) throw new Error(`fixture ${this.name} has no tensor ${key}`);
    return t;
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  f64(key: string): Float64Array {
    const { data } = this.get(key);
    if (data instanceof Float64Array) return data;
    if (data instanceof BigInt64Array) return Float64Array.from(data, Number);
    return Float64Array.from(data as ArrayLike<number>);
  }

  f32(key: string): Float32Array {
    return Float32Array.from(this.f64(key));
  }

  i32(key: string): Int32Array {
    return Int32Array.from(this.f64(key));
  }

  scalar(key: string): number {
    return this.f64(key)[0];
  }

  shape(key: string): number[] {
    return this.get(key).shape;
  }
}
