#include "cpu/masked_scatter.h"

#include <cstring>
#include <vector>

namespace othink::cpu {

namespace {
// Row copies are memory bound: one thread per 64K elements.
constexpr int64_t kGrain = 1 << 16;

// The source row of each output row: k for the k-th masked row, -1 for the others. One serial
// pass over the mask (as long as the token count), so the copies can then run in parallel.
std::vector<int64_t> source_rows(const int32_t* mask, int64_t rows) {
  std::vector<int64_t> src(static_cast<size_t>(rows));
  int64_t k = 0;
  for (int64_t r = 0; r < rows; ++r) src[r] = mask[r] != 0 ? k++ : -1;
  return src;
}
}  // namespace

void masked_scatter_rows_forward(const float* base, const int32_t* mask, const float* source, int64_t rows,
                                 int64_t hidden, float* out) {
  const std::vector<int64_t> src = source_rows(mask, rows);
  const size_t bytes = static_cast<size_t>(hidden) * sizeof(float);
#pragma omp parallel for schedule(static) if (rows * hidden > kGrain)
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * hidden;
    if (src[r] >= 0)
      std::memcpy(o, source + src[r] * hidden, bytes);
    else if (o != base + r * hidden)
      std::memcpy(o, base + r * hidden, bytes);
  }
}

void masked_scatter_rows_backward(const float* g, const int32_t* mask, int64_t rows, int64_t hidden,
                                  float* grad_base, float* grad_source) {
  const std::vector<int64_t> src = source_rows(mask, rows);
  const size_t bytes = static_cast<size_t>(hidden) * sizeof(float);
#pragma omp parallel for schedule(static) if (rows * hidden > kGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const float* gr = g + r * hidden;
    if (src[r] >= 0) {
      if (grad_base) std::memset(grad_base + r * hidden, 0, bytes);
      if (grad_source) std::memcpy(grad_source + src[r] * hidden, gr, bytes);
    } else if (grad_base) {
      std::memcpy(grad_base + r * hidden, gr, bytes);
    }
  }
}

}  // namespace othink::cpu
