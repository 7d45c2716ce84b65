// Copies: a memcpy split over all threads (also the memory-bandwidth peer of the benchmarks), and
// the strided block copy behind concat / split.
#pragma once
#include <cstddef>
#include <cstdint>

namespace othink::cpu {

void parallel_copy(void* dst, const void* src, size_t bytes);

// A 2-D block copy: rows of `cols` floats from src (row stride ld_src) to dst (row stride ld_dst).
// concat / split / slicing along any axis are this with the axis folded into the columns.
void copy_2d(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols);

}  // namespace othink::cpu
