// The caching allocator's bookkeeping (src/cuda/allocator.cu) checked without a GPU: the allocator is
// host code, so check-cuda.sh compiles it with g++ and links it against the fake CUDA runtime below
// instead of libcudart. The fake hands out host memory, enforces a capacity per device (to exercise
// the out-of-memory release-and-retry) and records which device each block belongs to.
// Prints "cuda-allocator-check: N checks passed" or the first failure (exit 1).
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cuda/allocator.cuh"

// ---- the fake CUDA runtime: the functions allocator.cu (and check.cuh) call.
namespace fake {
std::mutex mu;
int current_device = 0;
int device_count = 2;
size_t capacity = size_t{64} << 20;  // per device
std::map<int, size_t> used;
std::map<void*, std::pair<int, size_t>> blocks;  // ptr -> (device, bytes)
size_t mallocs = 0, frees = 0, frees_on_wrong_device = 0;
cudaError_t last_error = cudaSuccess;
}  // namespace fake

extern "C" {
cudaError_t cudaMalloc(void** ptr, size_t size) {
  std::lock_guard<std::mutex> lock(fake::mu);
  if (fake::used[fake::current_device] + size > fake::capacity) {
    fake::last_error = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  *ptr = std::malloc(size == 0 ? 1 : size);
  fake::used[fake::current_device] += size;
  fake::blocks[*ptr] = {fake::current_device, size};
  ++fake::mallocs;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  std::lock_guard<std::mutex> lock(fake::mu);
  const auto it = fake::blocks.find(ptr);
  if (it == fake::blocks.end()) return cudaErrorInvalidValue;
  if (it->second.first != fake::current_device) ++fake::frees_on_wrong_device;
  fake::used[it->second.first] -= it->second.second;
  fake::blocks.erase(it);
  std::free(ptr);
  ++fake::frees;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = fake::current_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= fake::device_count) return cudaErrorInvalidDevice;
  fake::current_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = fake::last_error;
  fake::last_error = cudaSuccess;
  return e;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *total = fake::capacity;
  *free_bytes = fake::capacity - fake::used[fake::current_device];
  return cudaSuccess;
}
const char* cudaGetErrorName(cudaError_t) { return "cudaErrorFake"; }
const char* cudaGetErrorString(cudaError_t) { return "fake error"; }
}

// ---- checks
namespace {
int checks = 0;

void check(bool ok, const std::string& what, int line) {
  ++checks;
  if (!ok) {
    std::fprintf(stderr, "cuda-allocator-check: FAILED at line %d: %s\n", line, what.c_str());
    std::exit(1);
  }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

using othink::cuda::allocator_stats;
using othink::cuda::device_alloc;
using othink::cuda::device_free;
constexpr size_t MiB = size_t{1} << 20;

void sizes_and_reuse() {
  const size_t m0 = fake::mallocs;
  void* z = device_alloc(0);  // a real block even for 0 bytes (a null pointer means "disposed")
  CHECK(z != nullptr);
  auto s = allocator_stats();
  CHECK(s.current_bytes == 0 && s.allocations == 1 && s.reserved_bytes == 512 && s.cached_bytes == 0);
  device_free(z);
  s = allocator_stats();
  CHECK(s.allocations == 0 && s.cached_bytes == 512 && s.reserved_bytes == 512);

  void* a = device_alloc(1000);  // 1024-byte block; the cached 512 is too small
  CHECK(fake::mallocs == m0 + 2);
  CHECK(fake::blocks[a].second == 1024);
  device_free(a);
  void* b = device_alloc(900);  // rounds to 1024: the cached block, no cudaMalloc
  CHECK(b == a && fake::mallocs == m0 + 2);
  s = allocator_stats();
  CHECK(s.current_bytes == 900 && s.cached_bytes == 512 && s.reserved_bytes == 1536);
  device_free(b);
  void* c = device_alloc(100);  // 512: the cached 512-byte block (best fit), not the 1024 one
  CHECK(fake::blocks[c].second == 512 && fake::mallocs == m0 + 2);
  void* d = device_alloc(200);  // 512 again: only 1024 is cached, at most twice the size: taken
  CHECK(d == b);
  device_free(c);
  device_free(d);
  void* e = device_alloc(10);  // 512: takes the 512 block, leaves the 1024 one
  CHECK(e == c);
  device_free(e);

  // Large: 2 MiB multiples; a cached 4 MiB block serves 3 MiB and 3.5 MiB requests, not 10 KiB.
  void* l = device_alloc(3 * MiB);
  CHECK(fake::blocks[l].second == 4 * MiB);
  device_free(l);
  void* l2 = device_alloc(3 * MiB + MiB / 2);
  CHECK(l2 == l);
  device_free(l2);
  const size_t before = fake::mallocs;
  void* small = device_alloc(10 * 1024);
  CHECK(small != l && fake::mallocs == before + 1);
  device_free(small);
  // A 40 MiB block is too wasteful for 30 MiB (30 + 3.75 MiB allowed).
  void* big = device_alloc(40 * MiB);
  device_free(big);
  const size_t before_30 = fake::mallocs;
  void* thirty = device_alloc(30 * MiB);
  CHECK(thirty != big);
  // The fake device has 64 MiB: 30 MiB more did not fit beside the 44 MiB cached, so the cache was
  // released and the retry succeeded.
  CHECK(fake::mallocs == before_30 + 1);
  s = allocator_stats();
  CHECK(s.cached_bytes == 0);
  CHECK(s.reserved_bytes == 30 * MiB);
  CHECK(fake::used[0] == 30 * MiB);
  device_free(thirty);
  othink::cuda::empty_cache();
  s = allocator_stats();
  CHECK(s.cached_bytes == 0 && s.reserved_bytes == 0 && s.current_bytes == 0 && fake::blocks.empty());
}

void out_of_memory() {
  void* keep = device_alloc(10 * MiB);
  const auto before = allocator_stats();
  bool threw = false;
  try {
    device_alloc(100 * MiB);
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find("CUDA out of memory allocating 104857600 bytes on device 0") == 0;
  }
  CHECK(threw);
  const auto after = allocator_stats();
  CHECK(after.current_bytes == before.current_bytes && after.allocations == before.allocations &&
        after.reserved_bytes == before.reserved_bytes);
  CHECK(fake::last_error == cudaSuccess);  // the failed cudaMalloc's error was cleared
  device_free(keep);
  othink::cuda::empty_cache();
}

void peak() {
  othink::cuda::reset_peak();
  void* a = device_alloc(3000);
  void* b = device_alloc(5000);
  device_free(a);
  auto s = allocator_stats();
  CHECK(s.peak_bytes == 8000 && s.current_bytes == 5000);
  othink::cuda::reset_peak();
  CHECK(allocator_stats().peak_bytes == 5000);
  device_free(b);
  device_free(b);        // a second free of the same pointer is ignored
  device_free(&checks);  // so is a pointer the allocator never gave out
  device_free(nullptr);
  s = allocator_stats();
  CHECK(s.current_bytes == 0 && s.allocations == 0);
  othink::cuda::empty_cache();
}

void devices() {
  cudaSetDevice(1);
  void* on1 = device_alloc(4096);
  device_free(on1);
  cudaSetDevice(0);
  void* on0 = device_alloc(4096);  // device 1's cached block is not handed to device 0
  CHECK(on0 != on1 && fake::blocks[on0].first == 0);
  device_free(on0);
  CHECK(allocator_stats().cached_bytes == 8192);
  othink::cuda::empty_cache();
  CHECK(fake::frees_on_wrong_device == 0);  // each block freed with its device current
  CHECK(fake::current_device == 0);         // and the caller's device restored
  CHECK(allocator_stats().reserved_bytes == 0);
}

void scratch() {
  {
    othink::cuda::DeviceScratch s(1234);
    CHECK(s.as<double>() != nullptr && allocator_stats().current_bytes == 1234);
  }
  CHECK(allocator_stats().current_bytes == 0 && allocator_stats().cached_bytes == 1536);
  othink::cuda::empty_cache();
}

void threads() {
  std::vector<std::thread> pool;
  std::atomic<bool> failed{false};
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([t, &failed] {
      unsigned seed = 12345u + static_cast<unsigned>(t);
      std::vector<void*> held;
      for (int i = 0; i < 2000; ++i) {
        seed = seed * 1103515245u + 12345u;
        if (held.size() < 16 && (seed >> 16) % 3 != 0) {
          try {
            held.push_back(device_alloc((seed >> 8) % 50000));
          } catch (...) {
            failed = true;
          }
        } else if (!held.empty()) {
          device_free(held.back());
          held.pop_back();
        }
      }
      for (void* p : held) device_free(p);
    });
  }
  for (auto& th : pool) th.join();
  CHECK(!failed);
  const auto s = allocator_stats();
  CHECK(s.current_bytes == 0 && s.allocations == 0 && s.reserved_bytes == s.cached_bytes);
  othink::cuda::empty_cache();
  CHECK(fake::blocks.empty());
}
}  // namespace

int main() {
  sizes_and_reuse();
  out_of_memory();
  peak();
  devices();
  scratch();
  threads();
  std::printf("cuda-allocator-check: %d checks passed\n", checks);
  return 0;
}
