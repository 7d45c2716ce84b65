// Axis sums in two shapes of work, both accumulating in double:
//   - inner == 1 (rows of `axis` contiguous values): a block of 256 threads per row, block_sum;
//   - inner > 1 (columns): a thread per output (o, i) walking the axis; neighbouring threads read
//     neighbouring i, so every load is coalesced.
// With few outputs and a long axis (sumAll, a bias gradient over many rows) that leaves the GPU
// idle, so the axis is cut into `splits` pieces: each writes a double partial, and a second kernel
// adds the partials of each output in split order. The order of every sum depends only on the
// sizes: results are deterministic. The partials live in the caching allocator's scratch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/reduce.cuh"

namespace othink::cuda {

namespace {

constexpr int kThreads = 256;  // a multiple of 32: dev::block_sum needs whole warps
constexpr int64_t kMaxGrid = 65536;
// Aim for at least this many threads in flight (an H100 holds 132 SMs x 2048) ...
constexpr int64_t kTargetThreads = 132 * 2048;
// ... but give each split at least this many values per thread, or splitting costs more than it saves.
constexpr int64_t kMinPerThread = 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned grid(int64_t items) { return static_cast<unsigned>(std::min(items, kMaxGrid)); }

struct Square {
  __device__ __forceinline__ double operator()(float v) const { return static_cast<double>(v) * v; }
};
struct Identity {
  __device__ __forceinline__ double operator()(float v) const { return static_cast<double>(v); }
};

// Block per (row, split): sums f(x[row, begin:end]) for the split's piece of the row. Rows are
// walked with a grid-stride loop (row-major over (row, split)); every thread of a block takes the
// same iterations, so block_sum is reached by all of them.
// splits == 1: out_f[row] = scale * sum. Else partial[split * rows + row] = sum.
template <typename F>
__global__ void rows_kernel(const float* x, int64_t rows, int64_t len, int64_t splits, int64_t piece, float scale,
                            float* out_f, double* partial, F f) {
  for (int64_t item = blockIdx.x; item < rows * splits; item += gridDim.x) {
    const int64_t row = item / splits, split = item % splits;
    const int64_t begin = split * piece, end = begin + piece < len ? begin + piece : len;
    const float* r = x + row * len;
    double s = 0.0;
    for (int64_t a = begin + threadIdx.x; a < end; a += blockDim.x) s += f(r[a]);
    s = dev::block_sum(s);
    if (threadIdx.x == 0) {
      if (splits == 1)
        out_f[row] = static_cast<float>(s * scale);
      else
        partial[split * rows + row] = s;
    }
  }
}

// Thread per (split, o, i), i fastest: sums x[o, a, i] over the split's piece of the axis.
__global__ void cols_kernel(const float* x, int64_t outer, int64_t axis, int64_t inner, int64_t splits, int64_t piece,
                            float scale, float* out_f, double* partial) {
  const int64_t outputs = outer * inner, items = outputs * splits;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < items; item += stride) {
    const int64_t split = item / outputs, j = item % outputs;
    const int64_t o = j / inner, i = j % inner;
    const int64_t begin = split * piece, end = begin + piece < axis ? begin + piece : axis;
    const float* col = x + o * axis * inner + i;
    double s = 0.0;
    for (int64_t a = begin; a < end; ++a) s += col[a * inner];
    if (splits == 1)
      out_f[j] = static_cast<float>(s * scale);
    else
      partial[split * outputs + j] = s;
  }
}

// out[j] = scale * sum_s partial[s * outputs + j], s in order (float out, or a double total).
__global__ void finish_kernel(const double* partial, int64_t outputs, int64_t splits, float scale, float* out_f,
                              double* out_d) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < outputs; j += stride) {
    double s = 0.0;
    for (int64_t k = 0; k < splits; ++k) s += partial[k * outputs + j];
    if (out_f) out_f[j] = static_cast<float>(s * scale);
    if (out_d) out_d[j] = s * scale;
  }
}

__global__ void broadcast_kernel(const float* g, float* out, int64_t n, int64_t axis, int64_t inner, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t i = idx % inner, o = idx / (axis * inner);
    out[idx] = scale * g[o * inner + i];
  }
}

// How many pieces to cut each row's `len` values into, given `rows` independent rows whose work
// already occupies `threads_per_row` threads each.
int64_t splits_for(int64_t rows, int64_t len, int64_t threads_per_row) {
  const int64_t busy = rows * threads_per_row;
  if (busy >= kTargetThreads) return 1;
  const int64_t wanted = ceil_div(kTargetThreads, busy);
  const int64_t most = std::max<int64_t>(1, len / (threads_per_row * kMinPerThread));
  return std::min(wanted, most);
}

// Row sums of f(x) over [rows, len]: into out_f (float, scaled) or out_d (double, scaled, device).
template <typename F>
void reduce_rows(const float* x, int64_t rows, int64_t len, float scale, float* out_f, double* out_d, F f,
                 cudaStream_t stream) {
  int64_t splits = splits_for(rows, len, kThreads);
  if (out_d) splits = std::max<int64_t>(splits, 2);  // a double result always goes through the partials
  const int64_t piece = ceil_div(len, splits);
  if (splits == 1) {
    rows_kernel<<<grid(rows), kThreads, 0, stream>>>(x, rows, len, 1, piece, scale, out_f, nullptr, f);
    OTHINK_CUDA_CHECK_LAUNCH();
    return;
  }
  DeviceScratch partial(static_cast<size_t>(rows * splits) * sizeof(double));
  rows_kernel<<<grid(rows * splits), kThreads, 0, stream>>>(x, rows, len, splits, piece, scale, nullptr,
                                                            partial.as<double>(), f);
  OTHINK_CUDA_CHECK_LAUNCH();
  finish_kernel<<<grid(ceil_div(rows, kThreads)), kThreads, 0, stream>>>(partial.as<double>(), rows, splits, scale,
                                                                        out_f, out_d);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace

void sum_axis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner, float scale,
              cudaStream_t stream) {
  if (outer < 1 || axis < 1 || inner < 1) throw_bad_argument("sum_axis", "outer, axis and inner must be >= 1");
  if (inner == 1) return reduce_rows(x, outer, axis, scale, out, nullptr, Identity{}, stream);
  const int64_t outputs = outer * inner;
  const int64_t splits = splits_for(outputs, axis, 1);
  const int64_t piece = ceil_div(axis, splits);
  if (splits == 1) {
    cols_kernel<<<grid(ceil_div(outputs, kThreads)), kThreads, 0, stream>>>(x, outer, axis, inner, 1, piece, scale,
                                                                            out, nullptr);
    OTHINK_CUDA_CHECK_LAUNCH();
    return;
  }
  DeviceScratch partial(static_cast<size_t>(outputs * splits) * sizeof(double));
  cols_kernel<<<grid(ceil_div(outputs * splits, kThreads)), kThreads, 0, stream>>>(x, outer, axis, inner, splits, piece,
                                                                                  scale, nullptr, partial.as<double>());
  OTHINK_CUDA_CHECK_LAUNCH();
  finish_kernel<<<grid(ceil_div(outputs, kThreads)), kThreads, 0, stream>>>(partial.as<double>(), outputs, splits,
                                                                            scale, out, nullptr);
  OTHINK_CUDA_CHECK_LAUNCH();
}

void broadcast_axis(const float* g, float* out, int64_t outer, int64_t axis, int64_t inner, float scale,
                    cudaStream_t stream) {
  if (outer < 1 || axis < 1 || inner < 1) throw_bad_argument("broadcast_axis", "outer, axis and inner must be >= 1");
  const int64_t n = outer * axis * inner;
  broadcast_kernel<<<grid(ceil_div(n, kThreads)), kThreads, 0, stream>>>(g, out, n, axis, inner, scale);
  OTHINK_CUDA_CHECK_LAUNCH();
}

double sum_squares(const float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return 0.0;
  DeviceScratch total(sizeof(double));
  reduce_rows(x, 1, n, 1.f, nullptr, total.as<double>(), Square{}, stream);
  double result = 0.0;
  // Waits for the kernels above (same stream order as the ops) before the value is read.
  OTHINK_CUDA_CHECK(cudaMemcpyAsync(&result, total.as<double>(), sizeof(double), cudaMemcpyDeviceToHost, stream));
  OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  return result;
}

}  // namespace othink::cuda
