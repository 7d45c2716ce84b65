// The caching allocator behind CUDA tensor storage. cudaMalloc / cudaFree are slow (cudaFree also
// synchronises the whole device), and a training step allocates and frees thousands of tensors of
// the same few sizes, so freed blocks are kept per device and handed out again:
//   - sizes are rounded up (512 B below 1 MiB, 2 MiB above) so that nearly equal requests share
//     blocks; a request takes the smallest cached block that fits without wasting too much of it
//     (best fit; blocks are never split), and cudaMalloc runs only on a miss;
//   - when cudaMalloc is out of memory, the device's cached blocks are released and it is tried
//     once more before the allocation fails;
//   - empty_cache() gives every cached block back to the driver.
// Stream semantics: every user of tensor memory enqueues its work on the legacy default stream
// (cuda/stream.cuh), so a block freed while kernels still read it can be reused at once: the next
// owner's work is queued behind those kernels. Thread-safe (one mutex). Host-only: plain C++
// (storage.cc) includes this header.
#pragma once
#include <cstddef>

namespace othink::cuda {

struct AllocatorStats {
  size_t current_bytes = 0;   // bytes requested by live allocations (what tensors asked for)
  size_t peak_bytes = 0;      // high-water mark of current_bytes since the last reset_peak()
  size_t allocations = 0;     // live allocations
  size_t cached_bytes = 0;    // bytes of free blocks kept for reuse
  size_t reserved_bytes = 0;  // bytes obtained from cudaMalloc and not yet released (live + cached)
  size_t device_mallocs = 0;  // cudaMalloc calls so far (a cache hit makes none)
};

// Device memory of at least `bytes` (0 gets a block too) on the current CUDA device, 256-byte
// aligned. Throws std::runtime_error (out of memory, with the numbers) or othink::cuda::CudaError.
void* device_alloc(size_t bytes);

// Returns a block from device_alloc to the cache. Never throws (it runs in finalizers); an unknown
// pointer is ignored.
void device_free(void* ptr) noexcept;

// Releases every cached block of every device to the driver (synchronises those devices).
void empty_cache();

// Summed over devices.
AllocatorStats allocator_stats();
void reset_peak();

// Scratch memory for one launcher call (reduction partials): from the cache, back to it when the
// scope ends. Safe to drop right after enqueuing the kernels that use it (see the stream semantics).
class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) : ptr_(device_alloc(bytes)) {}
  ~DeviceScratch() { device_free(ptr_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_;
};

}  // namespace othink::cuda
