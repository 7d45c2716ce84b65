#include "cpu/embedding.h"

#include <algorithm>
#include <cstring>

namespace othink::cpu {

namespace {
// Row copies are memory bound: one thread per 64K elements.
constexpr int64_t kGrain = 1 << 16;
// Columns per task of the backward: 64 floats = four cache lines of every gradient row.
constexpr int64_t kColBlock = 64;
}  // namespace

void embedding_forward(const int32_t* ids, const float* table, int64_t n, int64_t hidden, float* out) {
#pragma omp parallel for schedule(static) if (n * hidden > kGrain)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * hidden, table + static_cast<int64_t>(ids[i]) * hidden,
                static_cast<size_t>(hidden) * sizeof(float));
}

void embedding_backward(const float* g, const int32_t* ids, int64_t n, int64_t vocab, int64_t hidden,
                        float* dtable) {
#pragma omp parallel for schedule(static) if (vocab * hidden > kGrain)
  for (int64_t v = 0; v < vocab; ++v) std::memset(dtable + v * hidden, 0, static_cast<size_t>(hidden) * sizeof(float));
  // No two tasks write the same element: each owns a block of columns and walks the ids in order,
  // so there are no races and no atomics, and duplicates add up in the order of the ids.
  const int64_t blocks = (hidden + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (n * hidden > kGrain)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColBlock, len = std::min(kColBlock, hidden - c0);
    for (int64_t i = 0; i < n; ++i) {
      float* dst = dtable + static_cast<int64_t>(ids[i]) * hidden + c0;
      const float* src = g + i * hidden + c0;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace othink::cpu
