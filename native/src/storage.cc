#include "storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#ifdef OTHINK_WITH_CUDA
#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/stream.cuh"
#endif

namespace othink {

namespace {
constexpr size_t kAlignment = 64;

struct Counters {
  std::atomic<size_t> current{0}, peak{0}, blocks{0};

  void add(size_t bytes) {
    const size_t now = current.fetch_add(bytes) + bytes;
    size_t seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    blocks.fetch_add(1);
  }
  void remove(size_t bytes) {
    current.fetch_sub(bytes);
    blocks.fetch_sub(1);
  }
};

Counters cpu_counters;
}  // namespace

void* storage_alloc(size_t bytes, Device device, bool zero) {
  if (device == Device::Cuda) {
#ifdef OTHINK_WITH_CUDA
    void* ptr = cuda::device_alloc(bytes);
    // Queued like the ops (cuda/stream.cuh): whatever uses the block next runs after the fill.
    if (zero && bytes > 0) {
      const cudaError_t err = cudaMemsetAsync(ptr, 0, bytes, cuda::tensor_stream());
      if (err != cudaSuccess) {
        cuda::device_free(ptr);
        cuda::throw_cuda_error(err, "cudaMemsetAsync", __FILE__, __LINE__);
      }
    }
    return ptr;
#else
    throw std::runtime_error(
        "this build of @othink/native has no CUDA support, so tensors cannot live on 'cuda' (rebuild it with "
        "OTHINK_CUDA=1 pnpm build on a machine with the CUDA toolkit)");
#endif
  }
  // aligned_alloc wants a size that is a multiple of the alignment; 0 bytes still gets a block.
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (!ptr) throw std::bad_alloc();
  if (zero) std::memset(ptr, 0, bytes);
  cpu_counters.add(bytes);
  return ptr;
}

void storage_free(void* ptr, size_t bytes, Device device) {
  if (!ptr) return;
  if (device == Device::Cuda) {
#ifdef OTHINK_WITH_CUDA
    cuda::device_free(ptr);
#endif
    return;
  }
  std::free(ptr);
  cpu_counters.remove(bytes);
}

MemoryStats memory_stats(Device device) {
  if (device == Device::Cuda) {
#ifdef OTHINK_WITH_CUDA
    const cuda::AllocatorStats s = cuda::allocator_stats();
    MemoryStats out;
    out.current_bytes = s.current_bytes;
    out.peak_bytes = s.peak_bytes;
    out.allocations = s.allocations;
    out.cached_bytes = s.cached_bytes;
    out.reserved_bytes = s.reserved_bytes;
    return out;
#else
    return {};  // no CUDA memory in this build
#endif
  }
  MemoryStats out;
  out.current_bytes = cpu_counters.current.load();
  out.peak_bytes = cpu_counters.peak.load();
  out.allocations = cpu_counters.blocks.load();
  return out;
}

void reset_peak_memory(Device device) {
  if (device == Device::Cuda) {
#ifdef OTHINK_WITH_CUDA
    cuda::reset_peak();
#endif
    return;
  }
  cpu_counters.peak.store(cpu_counters.current.load());
}

void empty_cache(Device device) {
#ifdef OTHINK_WITH_CUDA
  if (device == Device::Cuda) cuda::empty_cache();
#else
  (void)device;
#endif
}

}  // namespace othink
