// Argument checks shared by the N-API entry points, so the CPU and CUDA bindings reject the same
// inputs with the same messages.
#pragma once
#include <napi.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "args.h"
#include "cpu/advantage.h"

namespace othink::validate {

constexpr int32_t kNoIgnoreIndex = INT32_MIN;

// Every target must be a vocabulary id (or the ignore index): the kernels index logits with it.
inline void check_targets(const Args& a, const int32_t* t, size_t n, int64_t vocab, int32_t ignore_index) {
  for (size_t i = 0; i < n; ++i) {
    if (t[i] == ignore_index) continue;
    if (t[i] < 0 || t[i] >= vocab)
      a.range_error("targets[" + std::to_string(i) + "] = " + std::to_string(t[i]) +
                    " is outside the vocabulary [0, " + std::to_string(vocab) + ")" +
                    (ignore_index == kNoIgnoreIndex ? "" : " and is not ignoreIndex = " + std::to_string(ignore_index)));
  }
}

inline void check_targets(const Args& a, const Napi::Int32Array& targets, int64_t vocab, int32_t ignore_index) {
  check_targets(a, targets.Data(), targets.ElementLength(), vocab, ignore_index);
}

// Rewards must be finite unless the caller asked to leave non-finite ones out.
inline void check_finite_rewards(const Args& a, const Napi::Float32Array& rewards) {
  const float* r = rewards.Data();
  if (const int64_t i = cpu::first_non_finite(r, static_cast<int64_t>(rewards.ElementLength())); i >= 0)
    a.range_error("rewards[" + std::to_string(i) + "] is " + (std::isnan(r[i]) ? "NaN" : "infinite") +
                  " (pass nonFinite: 'ignore' to leave such rewards out with advantage 0)");
}

inline int32_t read_ignore_index(const Args& a) {
  if (!a.has("ignoreIndex")) return kNoIgnoreIndex;
  const double x = a.number("ignoreIndex", 0);
  if (x != std::floor(x) || x < INT32_MIN + 1.0 || x > INT32_MAX) a.range_error("ignoreIndex must be an int32");
  return static_cast<int32_t>(x);
}

inline float read_inv_temperature(const Args& a) {
  const double t = a.number("temperature", 1.0);
  if (t <= 0) a.range_error("temperature must be > 0 (got " + Args::format(t) + ")");
  return static_cast<float>(1.0 / t);
}

// Optional per-row arrays of the backward passes (a Float32Array or a float32 tensor; null when absent).
inline const float* optional_row_grad(const Args& a, const char* name, size_t n) {
  return a.f32_buffer(name, n, "one per token", false);
}

// 'k1' | 'k2' | 'k3' | 'abs' (default 'k3'), as a string: each binding maps it to its own enum.
inline std::string read_kl_estimator_name(const Args& a, const char* name) {
  return a.choice(name, "k3", {"k1", "k2", "k3", "abs"});
}

inline float read_clamp(const Args& a, const char* name) {
  const double c = a.number(name, 0);
  if (c < 0) a.range_error(std::string(name) + " must be > 0 (or left out for no clamp)");
  return static_cast<float>(c);
}

}  // namespace othink::validate
