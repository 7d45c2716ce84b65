// The masked row scatter of image features into token embeddings (cpu/masked_scatter.h), forward
// and backward. The mask is checked here: 0 / 1 only, and as many ones as source has rows (HF
// raises on a mismatch of image tokens and features too, spec §4.2).
#include <string>

#include "args.h"
#include "bindings/ops_registry.h"
#include "cpu/masked_scatter.h"

namespace othink {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

// The mask [rows] as int32 of 0 / 1; `ones` gets the number of ones.
const int32_t* read_mask(const Args& a, int64_t rows, int64_t& ones) {
  const Args::Buffer b = a.buffer("mask", "int32");
  if (static_cast<int64_t>(b.length) != rows)
    a.range_error("mask has " + std::to_string(b.length) + " elements; expected " + std::to_string(rows) + " (one per row)");
  const int32_t* mask = static_cast<const int32_t*>(b.data);
  ones = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (mask[r] != 0 && mask[r] != 1)
      a.range_error("mask[" + std::to_string(r) + "] = " + std::to_string(mask[r]) + " is not 0 or 1");
    ones += mask[r];
  }
  return mask;
}

std::string rows_text(int64_t n) { return std::to_string(n) + (n == 1 ? " row" : " rows"); }

// A [ones, hidden] float32 buffer, with an error naming both the mask's count and the buffer's rows.
float* read_rows(const Args& a, const char* name, int64_t ones, int64_t hidden, bool required) {
  const Args::Buffer b = a.buffer(name, "float32", required);
  if (!required && !b) return nullptr;
  const int64_t len = static_cast<int64_t>(b.length);
  if (len != ones * hidden) {
    const std::string has = len % hidden == 0 ? rows_text(len / hidden)
                                              : std::to_string(len) + " elements (not whole rows of " + std::to_string(hidden) + ")";
    a.range_error("the mask selects " + rows_text(ones) + " but " + name + " has " + has + "; they must match (expected " +
                  name + " [" + std::to_string(ones) + ", " + std::to_string(hidden) + "])");
  }
  return static_cast<float*>(b.data);
}

// maskedScatterRows({ base, mask, source, out, rows, hidden })
Napi::Value MaskedScatterRows(const Napi::CallbackInfo& info) {
  Args a(info, "ops.maskedScatterRows");
  const int64_t rows = a.positive_int("rows", 0, true), hidden = a.positive_int("hidden", 0, true);
  const std::string shape = "[rows, hidden] = " + dims({rows, hidden});
  int64_t ones = 0;
  const int32_t* mask = read_mask(a, rows, ones);
  const float* base = a.f32_buffer("base", rows * hidden, shape);
  const float* source = read_rows(a, "source", ones, hidden, true);
  float* out = a.f32_buffer("out", rows * hidden, shape);
  cpu::masked_scatter_rows_forward(base, mask, source, rows, hidden, out);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("maskedScatterRows", MaskedScatterRows);

// maskedScatterRowsBackward({ grad, mask, rows, hidden, gradBase?, gradSource? })
Napi::Value MaskedScatterRowsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.maskedScatterRowsBackward");
  const int64_t rows = a.positive_int("rows", 0, true), hidden = a.positive_int("hidden", 0, true);
  const std::string shape = "[rows, hidden] = " + dims({rows, hidden});
  int64_t ones = 0;
  const int32_t* mask = read_mask(a, rows, ones);
  const float* g = a.f32_buffer("grad", rows * hidden, shape);
  float* grad_base = a.f32_buffer("gradBase", rows * hidden, shape, false);
  float* grad_source = read_rows(a, "gradSource", ones, hidden, false);
  cpu::masked_scatter_rows_backward(g, mask, rows, hidden, grad_base, grad_source);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("maskedScatterRowsBackward", MaskedScatterRowsBackward);

}  // namespace
}  // namespace othink
