// The caching allocator of cuda/allocator.cuh: one mutex over a map of live blocks and, per device,
// an ordered set of free blocks for best-fit lookups.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"

namespace othink::cuda {

namespace {

constexpr size_t kMinBlock = 512;           // small sizes round up to multiples of this
constexpr size_t kSmallLimit = size_t{1} << 20;  // up to 1 MiB: "small"
constexpr size_t kLargeRound = size_t{2} << 20;  // above: multiples of 2 MiB (the driver's page size)

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

size_t block_size_for(size_t bytes) {
  if (bytes <= kSmallLimit) return std::max(kMinBlock, round_up(bytes, kMinBlock));
  return round_up(bytes, kLargeRound);
}

// The largest cached block a request of `size` (already rounded) may take. Blocks are not split,
// so this bounds the waste: at most half a small block, at most 2 MiB or an eighth of a large one.
size_t max_block_for(size_t size) {
  return size <= kSmallLimit ? 2 * size : size + std::max(kLargeRound, size / 8);
}

struct LiveBlock {
  size_t size;       // the block's size (rounded)
  size_t requested;  // what the caller asked for (the stats count this, like the CPU's)
  int device;
};

class Allocator {
 public:
  void* alloc(size_t bytes) {
    const size_t size = block_size_for(bytes);
    int device = 0;
    OTHINK_CUDA_CHECK(cudaGetDevice(&device));
    std::lock_guard<std::mutex> lock(mu_);
    // A cached block may be larger than `size`; it keeps its own size for the bins.
    auto [ptr, block_size] = take_cached(device, size);
    if (!ptr) {
      ptr = malloc_or_release(device, size, bytes);
      block_size = size;
    }
    try {
      live_.emplace(ptr, LiveBlock{block_size, bytes, device});
    } catch (...) {
      return_to_cache(device, block_size, ptr);
      throw;
    }
    current_ += bytes;
    peak_ = std::max(peak_, current_);
    return ptr;
  }

  void free(void* ptr) noexcept {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    const auto found = live_.find(ptr);
    if (found == live_.end()) return;
    const LiveBlock block = found->second;
    live_.erase(found);
    current_ -= block.requested;
    return_to_cache(block.device, block.size, ptr);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [device, blocks] : free_) release_cached(device, blocks);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    AllocatorStats s;
    s.current_bytes = current_;
    s.peak_bytes = peak_;
    s.allocations = live_.size();
    s.cached_bytes = cached_;
    s.reserved_bytes = reserved_;
    s.device_mallocs = mallocs_;
    return s;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = current_;
  }

 private:
  using FreeSet = std::set<std::pair<size_t, void*>>;  // (size, ptr): ordered by size for best fit

  // The smallest cached block of the device that holds `size` bytes without too much waste, and
  // its size; {nullptr, 0} on a miss.
  std::pair<void*, size_t> take_cached(int device, size_t size) {
    const auto blocks = free_.find(device);
    if (blocks == free_.end()) return {nullptr, 0};
    const auto it = blocks->second.lower_bound({size, nullptr});
    if (it == blocks->second.end() || it->first > max_block_for(size)) return {nullptr, 0};
    const std::pair<void*, size_t> got{it->second, it->first};
    blocks->second.erase(it);
    cached_ -= got.second;
    return got;
  }

  void return_to_cache(int device, size_t size, void* ptr) noexcept {
    try {
      free_[device].emplace(size, ptr);
      cached_ += size;
    } catch (...) {
      // No host memory for the set node: the block stays reserved but unused (a leak, not a crash).
    }
  }

  // cudaMalloc; on out-of-memory, release this device's cached blocks and try once more.
  void* malloc_or_release(int device, size_t size, size_t requested) {
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, so the next CUDA call does not report it again
      const auto blocks = free_.find(device);
      if (blocks != free_.end() && !blocks->second.empty()) {
        release_cached(device, blocks->second);
        err = cudaMalloc(&ptr, size);
      }
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      const bool info = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
      cudaGetLastError();
      throw std::runtime_error("CUDA out of memory allocating " + std::to_string(requested) + " bytes on device " +
                               std::to_string(device) + " (" + std::to_string(current_) + " bytes held by tensors, " +
                               std::to_string(reserved_) + " reserved by this allocator" +
                               (info ? ", " + std::to_string(free_bytes) + " of " + std::to_string(total_bytes) +
                                           " bytes free on the device"
                                     : std::string()) +
                               ")");
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
    reserved_ += size;
    ++mallocs_;
    return ptr;
  }

  // cudaFree every block of `blocks` (on its device; cudaFree synchronises it, so kernels still
  // reading a freed block finish first).
  void release_cached(int device, FreeSet& blocks) {
    if (blocks.empty()) return;
    int previous = 0;
    OTHINK_CUDA_CHECK(cudaGetDevice(&previous));
    if (previous != device) OTHINK_CUDA_CHECK(cudaSetDevice(device));
    cudaError_t first_error = cudaSuccess;
    while (!blocks.empty()) {
      const auto it = blocks.begin();
      const cudaError_t err = cudaFree(it->second);
      if (err != cudaSuccess && first_error == cudaSuccess) first_error = err;
      cached_ -= it->first;
      reserved_ -= it->first;
      blocks.erase(it);
    }
    if (previous != device) cudaSetDevice(previous);
    if (first_error != cudaSuccess) throw_cuda_error(first_error, "cudaFree", __FILE__, __LINE__);
  }

  std::mutex mu_;
  std::unordered_map<void*, LiveBlock> live_;
  std::map<int, FreeSet> free_;
  size_t current_ = 0, peak_ = 0, cached_ = 0, reserved_ = 0, mallocs_ = 0;
};

// Never destroyed: freeing device memory from a static destructor races the driver's own teardown
// at process exit (the driver frees everything then anyway).
Allocator& allocator() {
  static Allocator* instance = new Allocator();
  return *instance;
}

}  // namespace

void* device_alloc(size_t bytes) { return allocator().alloc(bytes); }
void device_free(void* ptr) noexcept { allocator().free(ptr); }
void empty_cache() { allocator().empty_cache(); }
AllocatorStats allocator_stats() { return allocator().stats(); }
void reset_peak() { allocator().reset_peak(); }

}  // namespace othink::cuda
