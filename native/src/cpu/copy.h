// A memcpy split over all threads: the memory-bandwidth peer the benchmarks compare kernels with.
#pragma once
#include <cstddef>

namespace othink::cpu {

void parallel_copy(void* dst, const void* src, size_t bytes);

}  // namespace othink::cpu
