/**
 * GEMM benchmark: float32 GFLOP/s (2 * m * n * k / seconds) of @othink/native's `sgemm` against
 * OpenBLAS's `cblas_sgemm`, both row-major on the same number of threads, on the shapes of a
 * Qwen2-VL training step: each model shape in the three layouts a Linear layer needs (NT: the
 * forward x @ W^T, NN: the input gradient dY @ W, TN: the weight gradient dY^T @ X) and the LM-head
 * chunks (110 tokens x 151936 vocabulary x 1536 hidden) in the same three layouts.
 *
 * Each figure is the median of several timed repetitions after one untimed warm-up; a repetition
 * runs the GEMM enough times to last ~20 ms, so small shapes are not dominated by timer noise. The
 * OpenBLAS peer is a small C harness compiled at bench time (`cc -O2 ... -lopenblas`) into a temp
 * dir and run as a child process right after our measurement of the same shape, so both see the
 * same machine load. Without a C compiler or libopenblas (Debian: libopenblas-dev, or the runtime
 * libopenblas0-pthread alone) its column is null. `quick` takes fewer repetitions and leaves out the
 * LM-head shapes (about 1 GB each).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildInfo, sgemm } from '@othink/native';

export type GemmTrans = 'NN' | 'NT' | 'TN';

export interface GemmBenchRow {
  shape: string;
  trans: GemmTrans;
  m: number;
  n: number;
  k: number;
  oursGflops: number;
  /** null when OpenBLAS is not available on this machine. */
  openblasGflops: number | null;
  /** ours / OpenBLAS. */
  ratio: number | null;
}

interface Shape {
  shape: string;
  trans: GemmTrans;
  m: number;
  n: number;
  k: number;
}

const MODEL_SHAPES: [number, number, number][] = [
  [512, 1024, 256],
  [256, 8960, 1536],
  [1536, 8960, 256],
];

const LM_HEAD_SHAPES: Shape[] = [
  { shape: 'lm-head logits', trans: 'NT', m: 110, n: 151936, k: 1536 },
  { shape: 'lm-head dHidden', trans: 'NN', m: 110, n: 1536, k: 151936 },
  { shape: 'lm-head dWeight', trans: 'TN', m: 151936, n: 1536, k: 110 },
];

/** Flops per timed repetition: ~20 ms at 200 GFLOP/s. */
const REP_FLOPS = 4e9;

// Times cblas_sgemm like benchOurs below: argv = m n k trans reps threads; prints the median GFLOP/s.
// The prototypes are declared here so that only the shared library is needed, not cblas.h.
const HARNESS = `
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void cblas_sgemm(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
void openblas_set_num_threads(int);
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void* a, const void* b) { double x = *(const double*)a, y = *(const double*)b; return (x > y) - (x < y); }
int main(int argc, char** argv) {
  if (argc != 7) return 2;
  const int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), reps = atoi(argv[5]);
  const int ta = argv[4][0] == 'T', tb = argv[4][1] == 'T';
  openblas_set_num_threads(atoi(argv[6]));
  float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
  double* t = malloc(sizeof(double) * reps);
  if (!a || !b || !c || !t) return 3;
  unsigned s = 12345;
  for (long i = 0; i < (long)m * k; ++i) { s = s * 1664525u + 1013904223u; a[i] = (float)s / 4294967296.f - 0.5f; }
  for (long i = 0; i < (long)k * n; ++i) { s = s * 1664525u + 1013904223u; b[i] = (float)s / 4294967296.f - 0.5f; }
  const double flops = 2.0 * m * n * k;
  const int inner = flops >= ${REP_FLOPS} ? 1 : (int)(${REP_FLOPS} / flops + 0.5);
  for (int r = -1; r < reps; ++r) {
    const double t0 = now();
    for (int i = 0; i < inner; ++i)
      cblas_sgemm(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, m, n, k, 1.f, a, ta ? m : k, b, tb ? k : n, 0.f, c, n);
    if (r >= 0) t[r] = (now() - t0) / inner;
  }
  qsort(t, reps, sizeof(double), cmp);
  printf("%.6f\\n", flops / t[reps / 2] / 1e9);
  return 0;
}
`;

/** Compiles the harness; null when there is no compiler or no libopenblas to link. */
function buildHarness(dir: string): string | null {
  const src = join(dir, 'openblas_sgemm.c');
  const exe = join(dir, 'openblas_sgemm');
  writeFileSync(src, HARNESS);
  // -lopenblas needs the -dev symlink; the runtime package alone has only libopenblas.so.0.
  const libs = ['-lopenblas'];
  try {
    const cache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const m of cache.matchAll(/libopenblas\S*\.so\S*\s.*=>\s*(\S+)/g)) libs.push(m[1]);
  } catch {
    // no ldconfig: -lopenblas only
  }
  for (const lib of libs) {
    const r = spawnSync('cc', ['-O2', src, '-o', exe, lib], { stdio: 'ignore' });
    if (r.status === 0) return exe;
  }
  return null;
}

function runHarness(exe: string, s: Shape, reps: number, threads: number): number | null {
  const r = spawnSync(exe, [s.m, s.n, s.k, s.trans, reps, threads].map(String), {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads) },
  });
  const gflops = Number.parseFloat(r.stdout ?? '');
  return r.status === 0 && Number.isFinite(gflops) ? gflops : null;
}

function uniform(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 4294967296 - 0.5;
  }
  return x;
}

function benchOurs(s: Shape, reps: number): number {
  const a = uniform(s.m * s.k, 1);
  const b = uniform(s.k * s.n, 2);
  const c = new Float32Array(s.m * s.n);
  const opts = { a, b, c, m: s.m, n: s.n, k: s.k, transA: s.trans[0] === 'T', transB: s.trans[1] === 'T' };
  const flops = 2 * s.m * s.n * s.k;
  const inner = flops >= REP_FLOPS ? 1 : Math.round(REP_FLOPS / flops);
  const times: number[] = [];
  for (let r = -1; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < inner; i++) sgemm(opts);
    if (r >= 0) times.push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
  }
  times.sort((x, y) => x - y);
  return flops / times[reps >> 1] / 1e9;
}

export async function benchGemm(opts: { quick: boolean }): Promise<GemmBenchRow[]> {
  const reps = opts.quick ? 3 : 7;
  const shapes: Shape[] = MODEL_SHAPES.flatMap(([m, n, k]) =>
    (['NT', 'NN', 'TN'] as const).map((trans) => ({ shape: `${m}x${n}x${k}`, trans, m, n, k })),
  );
  if (!opts.quick)
    shapes.push(...LM_HEAD_SHAPES.map((s) => ({ ...s, shape: `${s.shape} ${s.m}x${s.n}x${s.k}` })));
  const threads = buildInfo().threads;
  const dir = mkdtempSync(join(tmpdir(), 'othink-gemm-'));
  try {
    const harness = buildHarness(dir);
    const rows: GemmBenchRow[] = [];
    for (const s of shapes) {
      const oursGflops = benchOurs(s, reps);
      const openblasGflops = harness ? runHarness(harness, s, reps, threads) : null;
      rows.push({
        ...s,
        oursGflops,
        openblasGflops,
        ratio: openblasGflops ? oursGflops / openblasGflops : null,
      });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
