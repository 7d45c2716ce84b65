#include "cpu/copy.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace othink::cpu {

void parallel_copy(void* dst, const void* src, size_t bytes) {
#pragma omp parallel
  {
    const size_t threads = static_cast<size_t>(omp_get_num_threads());
    const size_t id = static_cast<size_t>(omp_get_thread_num());
    // Slices of whole 64-byte cache lines so threads never share one.
    const size_t lines = (bytes + 63) / 64;
    const size_t begin = std::min(bytes, lines * id / threads * 64);
    const size_t end = std::min(bytes, lines * (id + 1) / threads * 64);
    if (end > begin) std::memcpy(static_cast<char*>(dst) + begin, static_cast<const char*>(src) + begin, end - begin);
  }
}

void copy_2d(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * ld_dst, src + r * ld_src, static_cast<size_t>(cols) * sizeof(float));
}

}  // namespace othink::cpu
