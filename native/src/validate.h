// Argument checks shared by the N-API entry points. Checks that read the values of an input (ids
// within the vocabulary, finite rewards) run where the input lives: a loop over host memory, or a
// small CUDA kernel whose verdict (an index, a count) is the only thing copied back.
#pragma once
#include <napi.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "args.h"
#include "cpu/advantage.h"
#ifdef OTHINK_WITH_CUDA
#include "bindings/device_dispatch.h"
#include "cuda/advantage.cuh"
#include "cuda/logprob.cuh"
#endif

namespace othink::validate {

constexpr int32_t kNoIgnoreIndex = INT32_MIN;

[[noreturn]] inline void bad_target(const Args& a, int64_t i, int32_t value, int64_t vocab, int32_t ignore_index) {
  a.range_error("targets[" + std::to_string(i) + "] = " + std::to_string(value) + " is outside the vocabulary [0, " +
                std::to_string(vocab) + ")" +
                (ignore_index == kNoIgnoreIndex ? "" : " and is not ignoreIndex = " + std::to_string(ignore_index)));
}

// Every target must be a vocabulary id (or the ignore index): the kernels index logits with it.
// Returns how many targets are not the ignore index (a cross-entropy's denominator), counted in the
// same pass. CUDA targets are checked on the device (the host never reads them).
inline int64_t check_targets(const Args& a, const Args::Buffer& targets, int64_t vocab, int32_t ignore_index) {
  const int32_t* t = static_cast<const int32_t*>(targets.data);
  const int64_t n = static_cast<int64_t>(targets.length);
#ifdef OTHINK_WITH_CUDA
  if (targets.device == Device::Cuda) {
    cuda::TargetCheck check{-1, 0, 0};
    run_cuda(a, [&] { check = cuda::check_targets(t, n, vocab, ignore_index, cuda::tensor_stream()); });
    if (check.first_bad >= 0) bad_target(a, check.first_bad, check.bad_value, vocab, ignore_index);
    return check.counted;
  }
#endif
  int64_t counted = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] == ignore_index) continue;
    if (t[i] < 0 || t[i] >= vocab) bad_target(a, i, t[i], vocab, ignore_index);
    ++counted;
  }
  return counted;
}

[[noreturn]] inline void bad_reward(const Args& a, int64_t i, float value) {
  a.range_error("rewards[" + std::to_string(i) + "] is " + (std::isnan(value) ? "NaN" : "infinite") +
                " (pass nonFinite: 'ignore' to leave such rewards out with advantage 0)");
}

// Rewards must be finite unless the caller asked to leave non-finite ones out. Host memory: a scan
// (the CPU binding runs it only when the kernel reported a non-finite reward). CUDA: on the device.
inline void check_finite_rewards(const Args& a, const Args::Buffer& rewards) {
  const float* r = static_cast<const float*>(rewards.data);
  const int64_t n = static_cast<int64_t>(rewards.length);
#ifdef OTHINK_WITH_CUDA
  if (rewards.device == Device::Cuda) {
    int64_t i = -1;
    float value = 0.f;
    run_cuda(a, [&] { i = cuda::first_non_finite(r, n, &value, cuda::tensor_stream()); });
    if (i >= 0) bad_reward(a, i, value);
    return;
  }
#endif
  if (const int64_t i = cpu::first_non_finite(r, n); i >= 0) bad_reward(a, i, r[i]);
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
