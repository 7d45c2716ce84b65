#include "cpu/sampling.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace othink::cpu {

namespace {

using sampling::Args;

constexpr uint64_t kAllTies = std::numeric_limits<uint64_t>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Per-thread buffers of one row: the warped logits, their order keys and weights.
struct RowScratch {
  std::vector<float> s;
  std::vector<uint32_t> key;
  std::vector<uint64_t> w;
};

struct Selected {
  uint32_t key;    // the selected key
  uint64_t above;  // the weight of the elements with a larger key
};

// The radix selection of the CUDA kernel, serially: the largest key v with
// sum over { key_i >= v, key_i >= floor } of weight(i) >= target (see sampling::pick_digit).
template <typename Weight>
Selected radix_select(const uint32_t* keys, int64_t n, uint32_t floor, uint64_t target, Weight weight) {
  uint32_t prefix = 0;
  uint64_t above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    uint64_t hist[256] = {};
    const uint32_t high = shift == 24 ? 0u : ~0u << (shift + 8);  // the digits chosen so far
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t k = keys[i];
      if (k < floor || (k & high) != prefix) continue;
      hist[(k >> shift) & 255u] += weight(i);
    }
    prefix |= sampling::pick_digit(hist, target, above) << shift;
  }
  return {prefix, above};
}

void invalid_row(const Args& a, int64_t r) {
  a.out_ids[r] = -1;
  a.out_logprobs[r] = std::numeric_limits<float>::quiet_NaN();
}

void sample_row(const Args& a, int64_t r, RowScratch& sc) {
  if (a.done && a.done[r]) {
    a.out_ids[r] = a.pad;
    a.out_logprobs[r] = 0.f;
    return;
  }
  const int64_t v = a.vocab;
  const float* x = a.logits + r * v;
  const float t = a.do_sample ? (a.temperatures ? a.temperatures[r] : a.temperature) : 1.f;
  const int32_t top_k = a.top_ks ? a.top_ks[r] : a.top_k;
  const float top_p = a.top_ps ? a.top_ps[r] : a.top_p;
  if (a.do_sample && !(t > 0.f && std::isfinite(t) && top_k >= 0 && top_p > 0.f && top_p <= 1.f))
    return invalid_row(a, r);

  // 1. Temperature (an IEEE division, as the GPU's __fdiv_rn), suppressed ids.
  std::vector<float>& s = sc.s;
  s.resize(v);
  bool bad = false;
  for (int64_t i = 0; i < v; ++i) {
    bad |= std::isnan(x[i]) || x[i] == kInf;
    s[i] = a.do_sample ? x[i] / t : x[i];
  }
  for (int64_t j = 0; j < a.suppress_count; ++j)
    if (a.suppress[j] >= 0 && a.suppress[j] < v) s[a.suppress[j]] = -kInf;

  // 2. The maximum (its first index: the greedy choice) and the log-partition.
  float m = -kInf;
  int64_t best = -1;
  for (int64_t i = 0; i < v; ++i)
    if (s[i] > m) m = s[i], best = i;
  if (bad || best < 0) return invalid_row(a, r);
  double z = 0.0;
  for (int64_t i = 0; i < v; ++i) z += std::exp(static_cast<double>(s[i]) - static_cast<double>(m));
  const double log_z = std::log(z);

  int64_t token = best;
  if (a.do_sample) {
    // 3. Keys and weights; top-k by count, then top-p by weight, both as radix selections.
    std::vector<uint32_t>& key = sc.key;
    std::vector<uint64_t>& w = sc.w;
    key.resize(v);
    w.resize(v);
    const int bits = sampling::weight_bits(v);
    for (int64_t i = 0; i < v; ++i) {
      key[i] = sampling::order_key(s[i]);
      w[i] = sampling::weight(s[i], m, bits);
    }
    uint32_t kept_key = 0;  // every key is >= 0: no truncation
    if (top_k > 0 && top_k < v)
      kept_key = radix_select(key.data(), v, 0, static_cast<uint64_t>(top_k), [](int64_t) { return uint64_t{1}; }).key;
    uint64_t ties = kAllTies;  // how many elements with key == kept_key stay, in index order
    if (top_p < 1.f) {
      uint64_t total = 0;
      for (int64_t i = 0; i < v; ++i)
        if (key[i] >= kept_key) total += w[i];
      const uint64_t target = sampling::top_p_target(top_p, total);
      const Selected sel = radix_select(key.data(), v, kept_key, target, [&](int64_t i) { return w[i]; });
      kept_key = sel.key;
      ties = sampling::ties_kept(target, sel.above, sampling::weight(sampling::key_value(sel.key), m, bits));
    }
    // 4. Inverse CDF over the kept tokens in index order, in exact integer sums.
    auto kept = [&](int64_t i, uint64_t& tie_rank) {
      return key[i] > kept_key || (key[i] == kept_key && tie_rank++ < ties);
    };
    uint64_t total = 0, rank = 0;
    for (int64_t i = 0; i < v; ++i)
      if (kept(i, rank)) total += w[i];
    const uint64_t draw = sampling::scale_draw(
        sampling::draw_bits(static_cast<uint32_t>(a.seeds[2 * r]), static_cast<uint32_t>(a.seeds[2 * r + 1]), a.step),
        total);
    uint64_t cum = 0;
    rank = 0;
    for (int64_t i = 0; i < v; ++i) {
      if (!kept(i, rank)) continue;
      cum += w[i];
      if (cum > draw) {
        token = i;
        break;
      }
    }
  }
  a.out_ids[r] = static_cast<int32_t>(token);
  a.out_logprobs[r] = static_cast<float>(static_cast<double>(s[token]) - static_cast<double>(m) - log_z);
  if (a.done)
    for (int64_t j = 0; j < a.stop_count; ++j)
      if (a.stop[j] == token) a.done[r] = 1;
}

}  // namespace

void sample_tokens(const Args& args) {
  // Rows in parallel, each row by one thread in one fixed order.
#pragma omp parallel if (args.rows > 1 && args.rows * args.vocab > (1 << 16))
  {
    RowScratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < args.rows; ++r) sample_row(args, r, scratch);
  }
}

}  // namespace othink::cpu
