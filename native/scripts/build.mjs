// Builds the addon with cmake-js (Node-API headers only, nothing downloaded).
// OTHINK_CUDA=1 adds the CUDA kernels; OTHINK_NATIVE_ARCH=0 builds for a generic x86-64 CPU.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const on = (name) => ['1', 'on', 'true', 'yes'].includes(String(process.env[name] ?? '').toLowerCase());
const args = ['build', '--CDOTHINK_CUDA=' + (on('OTHINK_CUDA') ? 'ON' : 'OFF')];
if (process.env.OTHINK_NATIVE_ARCH === '0') args.push('--CDOTHINK_NATIVE_ARCH=OFF');
if (process.env.CMAKE_CUDA_ARCHITECTURES)
  args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.CMAKE_CUDA_ARCHITECTURES}`);

const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const result = spawnSync(process.execPath, [cmakeJs, ...args], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: String(availableParallelism()) },
});
if (result.status !== 0) {
  console.error(
    '\n@othink/native: the addon did not build. It needs g++ (C++17), cmake >= 3.18 and OpenMP;' +
      ' the CUDA build (OTHINK_CUDA=1) also needs a CUDA toolkit with cuBLAS.',
  );
  process.exit(result.status ?? 1);
}
