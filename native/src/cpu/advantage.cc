#include "cpu/advantage.h"

#include <cmath>

namespace othink::cpu {

namespace {
struct Moments {
  double mean = 0.0, std = 0.0;
};

// Two-pass mean and unbiased std over the finite values of x[0..n).
Moments moments(const float* x, int64_t n) {
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) sum += x[i], ++count;
  Moments m;
  if (count == 0) return m;
  m.mean = sum / count;
  if (count < 2) return m;
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) ss += (x[i] - m.mean) * (x[i] - m.mean);
  m.std = std::sqrt(ss / (count - 1));
  return m;
}
}  // namespace

void group_advantages(const float* rewards, int64_t n, int64_t group_size, AdvantageScale scale,
                      bool /*skip_non_finite: non-finite values are always left out here; the
                             caller has already rejected them when not skipping*/,
                      float eps, float* advantages, float* group_means, float* group_stds) {
  const int64_t groups = n / group_size;
  const double batch_std = scale == AdvantageScale::Batch ? moments(rewards, n).std : 0.0;
#pragma omp parallel for if (groups > 4096)
  for (int64_t g = 0; g < groups; ++g) {
    const float* r = rewards + g * group_size;
    const Moments m = moments(r, group_size);
    group_means[g] = static_cast<float>(m.mean);
    group_stds[g] = static_cast<float>(m.std);
    const double denom = scale == AdvantageScale::Group   ? m.std + eps
                         : scale == AdvantageScale::Batch ? batch_std + eps
                                                          : 1.0;
    // One division per group: a per-element division is the kernel's bottleneck.
    const float inv = static_cast<float>(1.0 / denom), mean = static_cast<float>(m.mean);
    for (int64_t i = 0; i < group_size; ++i) {
      const float ri = r[i];
      advantages[g * group_size + i] = std::isfinite(ri) ? (ri - mean) * inv : 0.f;
    }
  }
}

}  // namespace othink::cpu
