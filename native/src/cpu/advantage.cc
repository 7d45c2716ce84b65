#include "cpu/advantage.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/simd.h"

namespace othink::cpu {

namespace {
struct Moments {
  double mean = 0.0, std = 0.0;
  int64_t count = 0;  // finite values
};

// Two-pass mean and unbiased std over the finite values of x[0..n).
Moments moments(const float* x, int64_t n) {
  Moments m;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) sum += x[i], ++m.count;
  if (m.count == 0) return m;
  m.mean = sum / m.count;
  if (m.count < 2) return m;
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) ss += (x[i] - m.mean) * (x[i] - m.mean);
  m.std = std::sqrt(ss / (m.count - 1));
  return m;
}

// Below this many rewards one thread is faster than waking the others.
constexpr int64_t kParallelMin = 1 << 18;

// Scale group or none, G a power of two <= 16: each 16-lane vector holds 16 / G whole groups,
// whose sums a butterfly of shuffles computes in registers, in one pass over memory that also
// checks finiteness (non-finite rewards give garbage here; the caller rejects them). Float32
// two-pass moments over at most 16 values are exact to ~1e-7 relative, and a group of equal
// rewards gets a mean equal to them (the butterfly only doubles), so exactly zero advantage.
template <int G>
bool segmented_advantages(const float* r, int64_t n, AdvantageScale scale, float eps, float* adv, float* means,
                          float* stds) {
  using namespace simd;
  const float inv_g = 1.f / G, inv_g1 = 1.f / (G - 1);
  const int64_t blocks = (n + kLanes - 1) / kLanes;
  bool all_finite = true;
#pragma omp parallel if (n >= kParallelMin) reduction(&& : all_finite)
  {
    f32v poison{};  // v * 0 is 0 for finite v, NaN otherwise
#pragma omp for schedule(dynamic, 256) nowait
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t i = b * kLanes, len = std::min(kLanes, n - i);
      const f32v v = len == kLanes ? load(r + i) : load_partial(r + i, len, 0.f);
      poison += v * 0.f;
      const f32v mean = segment_sum<G>(v) * inv_g;
      const f32v d = v - mean;
      const f32v sd = sqrt(segment_sum<G>(d * d) * inv_g1);
      const f32v a = scale == AdvantageScale::Group ? d / (sd + eps) : d;
      if (len == kLanes) {
        store(adv + i, a);
        // A fixed-size copy of the low lanes compiles to one narrow store; reading lanes at a
        // runtime index would go through the stack and stall store forwarding.
        const f32v mean_heads = segment_heads<G>(mean), sd_heads = segment_heads<G>(sd);
        std::memcpy(means + i / G, &mean_heads, kLanes / G * sizeof(float));
        std::memcpy(stds + i / G, &sd_heads, kLanes / G * sizeof(float));
      } else {
        store_partial(adv + i, a, len);
        for (int64_t k = 0; k < len / G; ++k) means[i / G + k] = mean[k * G], stds[i / G + k] = sd[k * G];
      }
    }
    all_finite = reduce_add(poison) == 0.f;
  }
  return all_finite;
}

// Any group size and scale: float64 two-pass moments per group over the finite rewards;
// non-finite rewards get advantage 0.
bool general_advantages(const float* rewards, int64_t n, int64_t group_size, AdvantageScale scale, float eps,
                        float* advantages, float* group_means, float* group_stds) {
  const int64_t groups = n / group_size;
  const Moments batch = scale == AdvantageScale::Batch ? moments(rewards, n) : Moments{};
  int64_t finite = 0;
#pragma omp parallel for if (n >= kParallelMin) reduction(+ : finite)
  for (int64_t g = 0; g < groups; ++g) {
    const float* r = rewards + g * group_size;
    const Moments m = moments(r, group_size);
    finite += m.count;
    group_means[g] = static_cast<float>(m.mean);
    group_stds[g] = static_cast<float>(m.std);
    const double denom = scale == AdvantageScale::Group   ? m.std + eps
                         : scale == AdvantageScale::Batch ? batch.std + eps
                                                          : 1.0;
    // One division per group: a per-element division is the kernel's bottleneck.
    const float inv = static_cast<float>(1.0 / denom), mean = static_cast<float>(m.mean);
    for (int64_t i = 0; i < group_size; ++i) {
      const float ri = r[i];
      advantages[g * group_size + i] = std::isfinite(ri) ? (ri - mean) * inv : 0.f;
    }
  }
  return finite == n;
}
}  // namespace

int64_t first_non_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

bool group_advantages(const float* rewards, int64_t n, int64_t group_size, AdvantageScale scale,
                      bool skip_non_finite, float eps, float* advantages, float* group_means, float* group_stds) {
  if (!skip_non_finite && scale != AdvantageScale::Batch) {
    switch (group_size) {
      case 2: return segmented_advantages<2>(rewards, n, scale, eps, advantages, group_means, group_stds);
      case 4: return segmented_advantages<4>(rewards, n, scale, eps, advantages, group_means, group_stds);
      case 8: return segmented_advantages<8>(rewards, n, scale, eps, advantages, group_means, group_stds);
      case 16: return segmented_advantages<16>(rewards, n, scale, eps, advantages, group_means, group_stds);
      default: break;
    }
  }
  return general_advantages(rewards, n, group_size, scale, eps, advantages, group_means, group_stds);
}

}  // namespace othink::cpu
