// RMSNorm / LayerNorm on the GPU (twin of cpu/norm.cc). Forward and dx: one block per row (grid-
// stride), block sums for the row statistics. dw / db: column sums over rows in two deterministic
// stages: each block sums a 32-column tile over a chunk of rows (fixed order), then one pass adds
// the chunks' partials in chunk order. The chunking depends on `rows` only, so results are the
// same on every GPU and every run.
#include <cuda_bf16.h>

#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/norm.cuh"

namespace othink::cuda {
namespace {

using dev::from_float;
using dev::to_float;

constexpr int kRowThreads = 256;
// Column sums: 32 columns (one warp, coalesced) x 8 row lanes per block.
constexpr int kColTile = 32;
constexpr int kRowLanes = 8;
constexpr int kReduceThreads = 256;

// Rows per chunk of the column sums: at least 256 (enough work per block), and at most 1024
// chunks (bounds the workspace and gridDim.y).
int64_t rows_per_chunk(int64_t rows) { return std::max<int64_t>(256, (rows + 1023) / 1024); }
int64_t chunk_count(int64_t rows) {
  const int64_t rpc = rows_per_chunk(rows);
  return (rows + rpc - 1) / rpc;
}

// v rounded to T and back (identity for float): HF's bf16 RMSNorm rounds the normalised row
// before multiplying by the weight (spec §3.2).
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return to_float(from_float<T>(v));
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    rms_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, int64_t rows, int64_t hidden, float eps,
                       T* __restrict__ y, float* __restrict__ rstd) {
  const float inv_h = 1.f / static_cast<float>(hidden);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * hidden;
    T* yr = y + r * hidden;
    float ss = 0.f;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
      const float v = to_float(xr[j]);
      ss += v * v;
    }
    ss = dev::block_sum(ss);
    // IEEE sqrt and division (not rsqrtf's ~2 ulp): the CPU twin's rstd to within rounding.
    const float s = 1.f / sqrtf(ss * inv_h + eps);
    if (threadIdx.x == 0) rstd[r] = s;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
      yr[j] = from_float<T>(round_to<T>(to_float(xr[j]) * s) * to_float(w[j]));
  }
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    layer_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, int64_t rows,
                         int64_t hidden, float eps, T* __restrict__ y, float* __restrict__ mean,
                         float* __restrict__ rstd) {
  const float inv_h = 1.f / static_cast<float>(hidden);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * hidden;
    T* yr = y + r * hidden;
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) sum += to_float(xr[j]);
    const float m = dev::block_sum(sum) * inv_h;
    // Second pass over the row (from L1 / L2) for the centred squares: no cancellation.
    float sq = 0.f;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
      const float d = to_float(xr[j]) - m;
      sq += d * d;
    }
    const float s = 1.f / sqrtf(dev::block_sum(sq) * inv_h + eps);
    if (threadIdx.x == 0) {
      mean[r] = m;
      rstd[r] = s;
    }
    // PyTorch's CUDA LayerNorm computes in float32 and rounds once to the output dtype (spec §8.6).
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
      yr[j] = from_float<T>(((to_float(xr[j]) - m) * s) * to_float(w[j]) + to_float(b[j]));
  }
}

// dx = rstd (g w - [LayerNorm: mean(g w)] - x_hat mean(g w x_hat)), x_hat = (x - [mean]) rstd.
template <typename T, bool kLayer>
__global__ void __launch_bounds__(kRowThreads)
    dx_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ mean,
              const float* __restrict__ rstd, int64_t rows, int64_t hidden, T* __restrict__ dx) {
  const float inv_h = 1.f / static_cast<float>(hidden);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = g + r * hidden;
    const T* xr = x + r * hidden;
    T* dr = dx + r * hidden;
    const float m = kLayer ? mean[r] : 0.f, s = rstd[r];
    float sum_gw = 0.f, dot = 0.f;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
      const float gw = to_float(gr[j]) * to_float(w[j]);
      sum_gw += gw;
      dot += gw * ((to_float(xr[j]) - m) * s);
    }
    const float a = kLayer ? dev::block_sum(sum_gw) * inv_h : 0.f;
    const float c = dev::block_sum(dot) * inv_h;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
      const float gw = to_float(gr[j]) * to_float(w[j]);
      dr[j] = from_float<T>(s * (gw - a - ((to_float(xr[j]) - m) * s) * c));
    }
  }
}

// Stage 1 of dw / db: block (tile, chunk) sums columns [tile * 32, +32) over the chunk's rows,
// row lane y taking rows y, y + 8, ..., then the 8 lanes in order. pw / pb [chunks, hidden] or null.
template <typename T, bool kLayer>
__global__ void __launch_bounds__(kColTile* kRowLanes)
    column_partials_kernel(const T* __restrict__ g, const T* __restrict__ x, const float* __restrict__ mean,
                           const float* __restrict__ rstd, int64_t rows, int64_t hidden, int64_t rows_per_chunk,
                           float* __restrict__ pw, float* __restrict__ pb) {
  __shared__ float sw[kRowLanes][kColTile + 1], sb[kRowLanes][kColTile + 1];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  float aw = 0.f, ab = 0.f;
  if (col < hidden) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) {
      const float gv = to_float(g[r * hidden + col]);
      const float m = kLayer ? mean[r] : 0.f;
      aw += gv * ((to_float(x[r * hidden + col]) - m) * rstd[r]);
      ab += gv;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && col < hidden) {
    float tw = 0.f, tb = 0.f;
#pragma unroll
    for (int k = 0; k < kRowLanes; ++k) {
      tw += sw[k][threadIdx.x];
      tb += sb[k][threadIdx.x];
    }
    if (pw) pw[blockIdx.y * hidden + col] = tw;
    if (pb) pb[blockIdx.y * hidden + col] = tb;
  }
}

// Stage 2: out[col] = sum over chunks, in chunk order.
__global__ void __launch_bounds__(kReduceThreads)
    column_reduce_kernel(const float* __restrict__ partial, int64_t chunks, int64_t hidden, float* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; col < hidden; col += stride) {
    float t = 0.f;
    for (int64_t c = 0; c < chunks; ++c) t += partial[c * hidden + col];
    out[col] = t;
  }
}

void check_shape(const char* fn, int64_t rows, int64_t hidden, float eps) {
  if (rows < 0 || hidden < 1) throw_bad_argument(fn, "needs rows >= 0 and hidden >= 1");
  if (!(eps >= 0.f)) throw_bad_argument(fn, "eps must be >= 0");
}

template <typename T, bool kLayer>
void backward(const char* fn, const T* g, const T* x, const T* w, const float* mean, const float* rstd, int64_t rows,
              int64_t hidden, T* dx, float* dw, float* db, void* workspace, size_t workspace_bytes,
              cudaStream_t stream) {
  check_shape(fn, rows, hidden, 0.f);
  if (rows == 0) {
    // No rows: the parameter gradients are sums of nothing.
    if (dw) OTHINK_CUDA_CHECK(cudaMemsetAsync(dw, 0, static_cast<size_t>(hidden) * sizeof(float), stream));
    if (db) OTHINK_CUDA_CHECK(cudaMemsetAsync(db, 0, static_cast<size_t>(hidden) * sizeof(float), stream));
    return;
  }
  if (!g || !x || !rstd || (kLayer && !mean)) throw_bad_argument(fn, "g, x, rstd (and mean) must be device pointers");
  if (dx) {
    if (!w) throw_bad_argument(fn, "dx needs the weight");
    dx_kernel<T, kLayer><<<dev::grid_for(rows), kRowThreads, 0, stream>>>(g, x, w, mean, rstd, rows, hidden, dx);
    OTHINK_CUDA_CHECK_LAUNCH();
  }
  if (!dw && !db) return;
  if (!workspace || workspace_bytes < norm_backward_workspace_bytes(rows, hidden))
    throw_bad_argument(fn, "the workspace is smaller than norm_backward_workspace_bytes(rows, hidden)");
  const int64_t rpc = rows_per_chunk(rows), chunks = chunk_count(rows);
  const size_t half = align256(static_cast<size_t>(chunks * hidden) * sizeof(float));
  float* pw = dw ? static_cast<float*>(workspace) : nullptr;
  float* pb = db ? reinterpret_cast<float*>(static_cast<char*>(workspace) + half) : nullptr;
  const dim3 grid(static_cast<unsigned>((hidden + kColTile - 1) / kColTile), static_cast<unsigned>(chunks));
  column_partials_kernel<T, kLayer>
      <<<grid, dim3(kColTile, kRowLanes), 0, stream>>>(g, x, mean, rstd, rows, hidden, rpc, pw, pb);
  OTHINK_CUDA_CHECK_LAUNCH();
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((hidden + kReduceThreads - 1) / kReduceThreads, 4096));
  if (dw) {
    column_reduce_kernel<<<blocks, kReduceThreads, 0, stream>>>(pw, chunks, hidden, dw);
    OTHINK_CUDA_CHECK_LAUNCH();
  }
  if (db) {
    column_reduce_kernel<<<blocks, kReduceThreads, 0, stream>>>(pb, chunks, hidden, db);
    OTHINK_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

size_t norm_backward_workspace_bytes(int64_t rows, int64_t hidden) {
  if (rows <= 0 || hidden <= 0) return 0;
  return 2 * align256(static_cast<size_t>(chunk_count(rows) * hidden) * sizeof(float));
}

template <typename T>
void rms_norm_forward(const T* x, const T* w, int64_t rows, int64_t hidden, float eps, T* y, float* rstd,
                      cudaStream_t stream) {
  check_shape("rms_norm_forward", rows, hidden, eps);
  if (rows == 0) return;
  if (!x || !w || !y || !rstd) throw_bad_argument("rms_norm_forward", "x, w, y and rstd must be device pointers");
  rms_forward_kernel<T><<<dev::grid_for(rows), kRowThreads, 0, stream>>>(x, w, rows, hidden, eps, y, rstd);
  OTHINK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, int64_t rows, int64_t hidden, float eps, T* y,
                        float* mean, float* rstd, cudaStream_t stream) {
  check_shape("layer_norm_forward", rows, hidden, eps);
  if (rows == 0) return;
  if (!x || !w || !b || !y || !mean || !rstd)
    throw_bad_argument("layer_norm_forward", "x, w, b, y, mean and rstd must be device pointers");
  layer_forward_kernel<T><<<dev::grid_for(rows), kRowThreads, 0, stream>>>(x, w, b, rows, hidden, eps, y, mean, rstd);
  OTHINK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void rms_norm_backward(const T* g, const T* x, const T* w, const float* rstd, int64_t rows, int64_t hidden, T* dx,
                       float* dw, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  backward<T, false>("rms_norm_backward", g, x, w, nullptr, rstd, rows, hidden, dx, dw, nullptr, workspace,
                     workspace_bytes, stream);
}

template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* w, const float* mean, const float* rstd, int64_t rows,
                         int64_t hidden, T* dx, float* dw, float* db, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
  backward<T, true>("layer_norm_backward", g, x, w, mean, rstd, rows, hidden, dx, dw, db, workspace, workspace_bytes,
                    stream);
}

#define OTHINK_INSTANTIATE_NORM(T)                                                                                  \
  template void rms_norm_forward<T>(const T*, const T*, int64_t, int64_t, float, T*, float*, cudaStream_t);        \
  template void layer_norm_forward<T>(const T*, const T*, const T*, int64_t, int64_t, float, T*, float*, float*,   \
                                      cudaStream_t);                                                               \
  template void rms_norm_backward<T>(const T*, const T*, const T*, const float*, int64_t, int64_t, T*, float*,     \
                                     void*, size_t, cudaStream_t);                                                 \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const float*, const float*, int64_t, int64_t, \
                                       T*, float*, float*, void*, size_t, cudaStream_t);
OTHINK_INSTANTIATE_NORM(float)
OTHINK_INSTANTIATE_NORM(__nv_bfloat16)
#undef OTHINK_INSTANTIATE_NORM

}  // namespace othink::cuda
