#include "storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

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
  if (device != Device::Cpu) throw std::runtime_error("this build of @othink/native has no CUDA device memory");
  // aligned_alloc wants a size that is a multiple of the alignment; 0 bytes still gets a block.
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (!ptr) throw std::bad_alloc();
  if (zero) std::memset(ptr, 0, bytes);
  cpu_counters.add(bytes);
  return ptr;
}

void storage_free(void* ptr, size_t bytes, Device device) {
  if (!ptr || device != Device::Cpu) return;
  std::free(ptr);
  cpu_counters.remove(bytes);
}

MemoryStats memory_stats(Device device) {
  if (device != Device::Cpu) return {};
  return {cpu_counters.current.load(), cpu_counters.peak.load(), cpu_counters.blocks.load()};
}

void reset_peak_memory(Device device) {
  if (device == Device::Cpu) cpu_counters.peak.store(cpu_counters.current.load());
}

}  // namespace othink
