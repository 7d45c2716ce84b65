// Masked row scatter on the GPU (twin of cpu/masked_scatter.cc): the mask becomes 0 / 1 flags, a
// CUB exclusive scan of them gives each set row its source row, then one block per row copies.
#include <cuda_bf16.h>

#include <algorithm>
#include <cub/device/device_scan.cuh>
#include <limits>
#include <utility>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/masked_scatter.cuh"

namespace othink::cuda {
namespace {

using dev::from_float;

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocks = 1 << 16;

constexpr int kCheckThreads = 256;

// The device side of MaskSummary. first_bad packs (position << 32 | value bits): positions are
// < 2^31, so the smallest key is the first bad position, and it carries its value along.
struct MaskCounters {
  unsigned long long ones;
  unsigned long long first_bad;
};

__global__ void __launch_bounds__(kCheckThreads)
    check_mask_kernel(const int32_t* __restrict__ mask, int64_t rows, MaskCounters* __restrict__ counters) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  unsigned long long ones = 0;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows; r += stride) {
    const int32_t v = mask[r];
    if (v == 1)
      ++ones;
    else if (v != 0)
      atomicMin(&counters->first_bad, (static_cast<unsigned long long>(r) << 32) | static_cast<uint32_t>(v));
  }
  // One atomic per block, not per row (every thread reaches the block sum: no early exit above).
  ones = dev::block_sum(ones);
  if (threadIdx.x == 0 && ones > 0) atomicAdd(&counters->ones, ones);
}

__global__ void flags_kernel(const int32_t* __restrict__ mask, int64_t rows, int32_t* __restrict__ flags) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows; r += stride)
    flags[r] = mask[r] != 0 ? 1 : 0;
}

// base and out may alias (in place): no __restrict__ on them; each element is read and written by
// the same thread.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    scatter_kernel(const T* base, const int32_t* __restrict__ flags, const int32_t* __restrict__ index,
                   const T* __restrict__ source, int64_t rows, int64_t hidden, int64_t ones, T* out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T* o = out + r * hidden;
    if (flags[r]) {
      const int64_t k = index[r];
      if (k < ones) {
        for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = source[k * hidden + j];
      } else {  // a wrong count from the caller: never read past source
        for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = from_float<T>(__int_as_float(0x7fc00000));
      }
    } else if (o != base + r * hidden) {
      for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = base[r * hidden + j];
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    scatter_backward_kernel(const T* __restrict__ g, const int32_t* __restrict__ flags,
                            const int32_t* __restrict__ index, int64_t rows, int64_t hidden, int64_t ones,
                            T* __restrict__ grad_base, T* __restrict__ grad_source) {
  const T zero = from_float<T>(0.f);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = g + r * hidden;
    if (flags[r]) {
      const int64_t k = index[r];
      if (grad_base)
        for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) grad_base[r * hidden + j] = zero;
      if (grad_source && k < ones)
        for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) grad_source[k * hidden + j] = gr[j];
    } else if (grad_base) {
      for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) grad_base[r * hidden + j] = gr[j];
    }
  }
}

struct Layout {
  size_t flags, index, temp, temp_bytes, total;
};

Layout layout(int64_t rows) {
  size_t temp_bytes = 0;
  // A size query only (null storage): no launch, no device access.
  OTHINK_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, temp_bytes, static_cast<const int32_t*>(nullptr),
                                                  static_cast<int32_t*>(nullptr), static_cast<int>(rows)));
  const size_t ints = align256(static_cast<size_t>(rows) * sizeof(int32_t));
  return {0, ints, 2 * ints, temp_bytes, 2 * ints + align256(temp_bytes)};
}

unsigned blocks_for(int64_t items) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(items, 1), kMaxBlocks)); }

// Flags and their exclusive prefix sum in the workspace; returns {flags, index}.
std::pair<int32_t*, int32_t*> source_index(const char* fn, const int32_t* mask, int64_t rows, void* workspace,
                                           size_t workspace_bytes, cudaStream_t stream) {
  const Layout l = layout(rows);
  if (!workspace || workspace_bytes < l.total)
    throw_bad_argument(fn, "the workspace is smaller than masked_scatter_workspace_bytes(rows)");
  char* ws = static_cast<char*>(workspace);
  int32_t* flags = reinterpret_cast<int32_t*>(ws + l.flags);
  int32_t* index = reinterpret_cast<int32_t*>(ws + l.index);
  flags_kernel<<<blocks_for((rows + 255) / 256), 256, 0, stream>>>(mask, rows, flags);
  OTHINK_CUDA_CHECK_LAUNCH();
  size_t temp_bytes = l.temp_bytes;
  OTHINK_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(ws + l.temp, temp_bytes, flags, index, static_cast<int>(rows), stream));
  return {flags, index};
}

void check_args(const char* fn, int64_t rows, int64_t hidden, int64_t ones) {
  if (rows < 0 || hidden < 1 || ones < 0 || ones > rows)
    throw_bad_argument(fn, "needs rows >= 0, hidden >= 1 and 0 <= ones <= rows");
  if (rows > std::numeric_limits<int32_t>::max()) throw_bad_argument(fn, "more than 2^31 - 1 rows");
}

}  // namespace

MaskSummary masked_scatter_check_mask(const int32_t* mask, int64_t rows, cudaStream_t stream) {
  if (rows < 0) throw_bad_argument("masked_scatter_check_mask", "needs rows >= 0");
  if (rows > std::numeric_limits<int32_t>::max())
    throw_bad_argument("masked_scatter_check_mask", "more than 2^31 - 1 rows (positions are packed into 32 bits)");
  if (rows == 0) return {0, -1, 0};
  if (!mask) throw_bad_argument("masked_scatter_check_mask", "mask must be a device pointer");
  const DeviceScratch scratch(sizeof(MaskCounters));
  MaskCounters* counters = scratch.as<MaskCounters>();
  // ones = 0; first_bad = all ones (larger than any packed key: none found).
  OTHINK_CUDA_CHECK(cudaMemsetAsync(&counters->ones, 0, sizeof(unsigned long long), stream));
  OTHINK_CUDA_CHECK(cudaMemsetAsync(&counters->first_bad, 0xff, sizeof(unsigned long long), stream));
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((rows + kCheckThreads - 1) / kCheckThreads, 4096));
  check_mask_kernel<<<blocks, kCheckThreads, 0, stream>>>(mask, rows, counters);
  OTHINK_CUDA_CHECK_LAUNCH();
  MaskCounters host{};
  OTHINK_CUDA_CHECK(cudaMemcpyAsync(&host, counters, sizeof host, cudaMemcpyDeviceToHost, stream));
  OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host.first_bad == ~0ull) return {static_cast<int64_t>(host.ones), -1, 0};
  return {static_cast<int64_t>(host.ones), static_cast<int64_t>(host.first_bad >> 32),
          static_cast<int32_t>(static_cast<uint32_t>(host.first_bad & 0xffffffffu))};
}

size_t masked_scatter_workspace_bytes(int64_t rows) {
  // The scan counts items in int: a larger count would wrap in the size query below.
  if (rows > std::numeric_limits<int32_t>::max())
    throw_bad_argument("masked_scatter_workspace_bytes", "more than 2^31 - 1 rows");
  return rows > 0 ? layout(rows).total : 0;
}

template <typename T>
void masked_scatter_rows_forward(const T* base, const int32_t* mask, const T* source, int64_t rows, int64_t hidden,
                                 int64_t ones, T* out, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  check_args("masked_scatter_rows_forward", rows, hidden, ones);
  if (rows == 0) return;
  if (!base || !mask || !out || (ones > 0 && !source))
    throw_bad_argument("masked_scatter_rows_forward", "base, mask, source and out must be device pointers");
  const auto [flags, index] =
      source_index("masked_scatter_rows_forward", mask, rows, workspace, workspace_bytes, stream);
  scatter_kernel<T><<<blocks_for(rows), kThreads, 0, stream>>>(base, flags, index, source, rows, hidden, ones, out);
  OTHINK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void masked_scatter_rows_backward(const T* g, const int32_t* mask, int64_t rows, int64_t hidden, int64_t ones,
                                  T* grad_base, T* grad_source, void* workspace, size_t workspace_bytes,
                                  cudaStream_t stream) {
  check_args("masked_scatter_rows_backward", rows, hidden, ones);
  if (rows == 0 || (!grad_base && !grad_source)) return;
  if (!g || !mask) throw_bad_argument("masked_scatter_rows_backward", "g and mask must be device pointers");
  // Rows of grad_source no set row reaches (a wrong count) are 0, not stale memory.
  if (grad_source && ones > 0)
    OTHINK_CUDA_CHECK(cudaMemsetAsync(grad_source, 0, static_cast<size_t>(ones * hidden) * sizeof(T), stream));
  const auto [flags, index] =
      source_index("masked_scatter_rows_backward", mask, rows, workspace, workspace_bytes, stream);
  scatter_backward_kernel<T><<<blocks_for(rows), kThreads, 0, stream>>>(g, flags, index, rows, hidden, ones, grad_base,
                                                                        grad_source);
  OTHINK_CUDA_CHECK_LAUNCH();
}

#define OTHINK_INSTANTIATE_MASKED_SCATTER(T)                                                                   \
  template void masked_scatter_rows_forward<T>(const T*, const int32_t*, const T*, int64_t, int64_t, int64_t, T*, \
                                               void*, size_t, cudaStream_t);                                   \
  template void masked_scatter_rows_backward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, T*, T*,    \
                                                void*, size_t, cudaStream_t);
OTHINK_INSTANTIATE_MASKED_SCATTER(float)
OTHINK_INSTANTIATE_MASKED_SCATTER(__nv_bfloat16)
#undef OTHINK_INSTANTIATE_MASKED_SCATTER

}  // namespace othink::cuda
