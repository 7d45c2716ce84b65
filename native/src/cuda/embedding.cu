// Embedding on the GPU (twin of cpu/embedding.cc). Forward: one block per output row. Backward:
// sort (id, position) pairs with CUB's stable radix sort, then one block per distinct id sums
// that id's gradient rows in position order and writes its table row once.
#include <cuda_bf16.h>

#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
#include <limits>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/embedding.cuh"

namespace othink::cuda {
namespace {

using dev::from_float;
using dev::to_float;

constexpr int kThreads = 128;
// Grid cap of the row loops (grid-stride beyond it).
constexpr int64_t kMaxBlocks = 1 << 16;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const int32_t* __restrict__ ids, const T* __restrict__ table, int64_t n, int64_t vocab,
                  int64_t hidden, T* __restrict__ out) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = ids[i];
    T* o = out + i * hidden;
    if (id < 0 || id >= vocab) {  // checked by the caller; never read out of bounds
      for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = from_float<T>(__int_as_float(0x7fc00000));
      continue;
    }
    const T* src = table + static_cast<int64_t>(id) * hidden;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = src[j];
  }
}

// The smallest (position << 32 | value bits) over the bad ids: the first bad position, with its
// value. Positions are < 2^31, so the packed key orders by position first.
__global__ void find_bad_id_kernel(const int32_t* __restrict__ ids, int64_t n, int64_t vocab,
                                   unsigned long long* __restrict__ first) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab)
      atomicMin(first, (static_cast<unsigned long long>(i) << 32) | static_cast<uint32_t>(id));
  }
}

__global__ void iota_kernel(int32_t* __restrict__ pos, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    pos[i] = static_cast<int32_t>(i);
}

// Block per sorted index i that starts a run of equal ids: sums the run's gradient rows (in
// increasing position, as the stable sort left them) column by column and stores the table row.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    segment_sum_kernel(const T* __restrict__ g, const int32_t* __restrict__ sorted_ids,
                       const int32_t* __restrict__ sorted_pos, int64_t n, int64_t vocab, int64_t hidden,
                       float* __restrict__ dtable) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = sorted_ids[i];
    // The same for the whole block: uniform control flow.
    if ((i > 0 && sorted_ids[i - 1] == id) || id < 0 || id >= vocab) continue;
    int64_t end = i + 1;
    while (end < n && sorted_ids[end] == id) ++end;
    float* dst = dtable + static_cast<int64_t>(id) * hidden;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
      float acc = 0.f;
      for (int64_t k = i; k < end; ++k) acc += to_float(g[static_cast<int64_t>(sorted_pos[k]) * hidden + j]);
      dst[j] = acc;
    }
  }
}

// The workspace: sorted ids, positions, sorted positions (n int32 each), then CUB's scratch.
struct Layout {
  size_t ids_sorted, pos, pos_sorted, temp, temp_bytes, total;
};

Layout layout(int64_t n) {
  size_t temp_bytes = 0;
  // A size query only (null storage): no launch, no device access.
  OTHINK_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, static_cast<const int32_t*>(nullptr),
                                                    static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                                    static_cast<int32_t*>(nullptr), static_cast<int>(n)));
  const size_t ints = align256(static_cast<size_t>(n) * sizeof(int32_t));
  Layout l{};
  l.ids_sorted = 0;
  l.pos = ints;
  l.pos_sorted = 2 * ints;
  l.temp = 3 * ints;
  l.temp_bytes = temp_bytes;
  l.total = 3 * ints + align256(temp_bytes);
  return l;
}

unsigned blocks_for(int64_t items) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(items, 1), kMaxBlocks)); }

}  // namespace

BadId embedding_find_bad_id(const int32_t* ids, int64_t n, int64_t vocab, cudaStream_t stream) {
  if (n < 0 || vocab < 1) throw_bad_argument("embedding_find_bad_id", "needs n >= 0 and vocab >= 1");
  if (n > std::numeric_limits<int32_t>::max())
    throw_bad_argument("embedding_find_bad_id", "more than 2^31 - 1 ids (positions are packed into 32 bits)");
  if (n == 0) return {-1, 0};
  if (!ids) throw_bad_argument("embedding_find_bad_id", "ids must be a device pointer");
  const DeviceScratch first(sizeof(unsigned long long));
  // All ones: larger than any packed (position, value), i.e. "none found".
  OTHINK_CUDA_CHECK(cudaMemsetAsync(first.as<void>(), 0xff, sizeof(unsigned long long), stream));
  find_bad_id_kernel<<<blocks_for((n + 255) / 256), 256, 0, stream>>>(ids, n, vocab, first.as<unsigned long long>());
  OTHINK_CUDA_CHECK_LAUNCH();
  unsigned long long packed = 0;
  OTHINK_CUDA_CHECK(cudaMemcpyAsync(&packed, first.as<void>(), sizeof packed, cudaMemcpyDeviceToHost, stream));
  OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (packed == ~0ull) return {-1, 0};
  return {static_cast<int64_t>(packed >> 32), static_cast<int32_t>(static_cast<uint32_t>(packed & 0xffffffffu))};
}

size_t embedding_backward_workspace_bytes(int64_t n) {
  // The sort counts items in int: a larger n would wrap in the size query below.
  if (n > std::numeric_limits<int32_t>::max())
    throw_bad_argument("embedding_backward_workspace_bytes", "more than 2^31 - 1 ids (the sort's positions are int32)");
  return n > 0 ? layout(n).total : 0;
}

template <typename T>
void embedding_forward(const int32_t* ids, const T* table, int64_t n, int64_t vocab, int64_t hidden, T* out,
                       cudaStream_t stream) {
  if (n < 0 || vocab < 1 || hidden < 1) throw_bad_argument("embedding_forward", "needs n >= 0, vocab >= 1, hidden >= 1");
  if (n == 0) return;
  if (!ids || !table || !out) throw_bad_argument("embedding_forward", "ids, table and out must be device pointers");
  gather_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(ids, table, n, vocab, hidden, out);
  OTHINK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void embedding_backward(const T* g, const int32_t* ids, int64_t n, int64_t vocab, int64_t hidden, float* dtable,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (n < 0 || vocab < 1 || hidden < 1)
    throw_bad_argument("embedding_backward", "needs n >= 0, vocab >= 1, hidden >= 1");
  if (n > std::numeric_limits<int32_t>::max())
    throw_bad_argument("embedding_backward", "more than 2^31 - 1 ids (the sort's positions are int32)");
  if (!dtable) throw_bad_argument("embedding_backward", "dtable must be a device pointer");
  OTHINK_CUDA_CHECK(cudaMemsetAsync(dtable, 0, static_cast<size_t>(vocab * hidden) * sizeof(float), stream));
  if (n == 0) return;
  if (!g || !ids) throw_bad_argument("embedding_backward", "g and ids must be device pointers");
  const Layout l = layout(n);
  if (!workspace || workspace_bytes < l.total)
    throw_bad_argument("embedding_backward", "the workspace is smaller than embedding_backward_workspace_bytes(n)");
  char* ws = static_cast<char*>(workspace);
  int32_t* ids_sorted = reinterpret_cast<int32_t*>(ws + l.ids_sorted);
  int32_t* pos = reinterpret_cast<int32_t*>(ws + l.pos);
  int32_t* pos_sorted = reinterpret_cast<int32_t*>(ws + l.pos_sorted);
  iota_kernel<<<blocks_for((n + 255) / 256), 256, 0, stream>>>(pos, n);
  OTHINK_CUDA_CHECK_LAUNCH();
  // All 32 key bits: negative (invalid) ids sort apart from every valid one, so each id's run
  // stays contiguous whatever the caller passed.
  size_t temp_bytes = l.temp_bytes;
  OTHINK_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(ws + l.temp, temp_bytes, ids, ids_sorted, pos, pos_sorted,
                                                    static_cast<int>(n), 0, 32, stream));
  segment_sum_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(g, ids_sorted, pos_sorted, n, vocab, hidden, dtable);
  OTHINK_CUDA_CHECK_LAUNCH();
}

#define OTHINK_INSTANTIATE_EMBEDDING(T)                                                                      \
  template void embedding_forward<T>(const int32_t*, const T*, int64_t, int64_t, int64_t, T*, cudaStream_t); \
  template void embedding_backward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, float*, void*, size_t, \
                                      cudaStream_t);
OTHINK_INSTANTIATE_EMBEDDING(float)
OTHINK_INSTANTIATE_EMBEDDING(__nv_bfloat16)
#undef OTHINK_INSTANTIATE_EMBEDDING

}  // namespace othink::cuda
