// Raw tensor memory owned by native code, so it is freed deterministically (dispose / tidy), not
// when V8's garbage collector gets to it. CPU blocks are 64-byte aligned for the vector kernels.
#pragma once
#include <cstddef>
#include <cstdint>

namespace othink {

enum class Device { Cpu, Cuda };

struct MemoryStats {
  size_t current_bytes = 0;  // live allocations
  size_t peak_bytes = 0;     // high-water mark since the last reset
  size_t allocations = 0;    // live blocks
  // CUDA only (the caching allocator): free blocks kept for reuse, and all memory taken from the driver.
  size_t cached_bytes = 0;
  size_t reserved_bytes = 0;
};

// Throws std::bad_alloc when the memory is not available.
void* storage_alloc(size_t bytes, Device device, bool zero);
void storage_free(void* ptr, size_t bytes, Device device);

MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);

// Gives the device's cached free blocks back to the driver (CUDA; a no-op for the CPU).
void empty_cache(Device device);

}  // namespace othink
