// The masked row scatter of image features into token embeddings (cpu/masked_scatter.h), forward
// and backward. The mask is checked here: 0 / 1 only, and as many ones as source has rows (HF
// raises on a mismatch of image tokens and features too, spec §4.2). Runs where the tensors are:
// the CPU kernel, or (CUDA builds) the CUDA twin (cuda/masked_scatter.cuh); a device mask is
// checked and counted on the device, and only the count and the first bad value come back.
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/masked_scatter.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/allocator.cuh"
#include "cuda/masked_scatter.cuh"
#endif

namespace othink {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

// The mask buffer, one int32 per row.
Args::Buffer read_mask(const Args& a, int64_t rows) {
  const Args::Buffer b = a.buffer("mask", "int32");
  if (static_cast<int64_t>(b.length) != rows)
    a.range_error("mask has " + std::to_string(b.length) + " elements; expected " + std::to_string(rows) + " (one per row)");
  return b;
}

// The number of ones of the mask; throws at the first value that is not 0 or 1. Called once every
// buffer has been read, so a device mismatch is reported before any work on the GPU.
int64_t count_ones(const Args& a, const Args::Buffer& b) {
  const int32_t* mask = static_cast<const int32_t*>(b.data);
  const int64_t rows = static_cast<int64_t>(b.length);
  int64_t ones = 0, bad = -1;
  int32_t value = 0;
#ifdef OTHINK_WITH_CUDA
  if (b.device == Device::Cuda) {
    run_cuda(a, [&] {
      const cuda::MaskSummary s = cuda::masked_scatter_check_mask(mask, rows, cuda::tensor_stream());
      ones = s.ones;
      bad = s.bad_index;
      value = s.bad_value;
    });
  }
#endif
  if (b.device == Device::Cpu) {
    for (int64_t r = 0; r < rows && bad < 0; ++r) {
      if (mask[r] != 0 && mask[r] != 1) {
        bad = r;
        value = mask[r];
      }
      ones += mask[r];
    }
  }
  if (bad >= 0) a.range_error("mask[" + std::to_string(bad) + "] = " + std::to_string(value) + " is not 0 or 1");
  return ones;
}

std::string rows_text(int64_t n) { return std::to_string(n) + (n == 1 ? " row" : " rows"); }

// Checks that a float32 buffer holds [ones, hidden], with an error naming both the mask's count and
// the buffer's rows. Absent optional buffers pass (a present but empty one is checked).
void check_rows(const Args& a, const char* name, const Args::Buffer& b, int64_t ones, int64_t hidden) {
  if (!a.has(name)) return;
  const int64_t len = static_cast<int64_t>(b.length);
  if (len != ones * hidden) {
    const std::string has = len % hidden == 0 ? rows_text(len / hidden)
                                              : std::to_string(len) + " elements (not whole rows of " + std::to_string(hidden) + ")";
    a.range_error("the mask selects " + rows_text(ones) + " but " + name + " has " + has + "; they must match (expected " +
                  name + " [" + std::to_string(ones) + ", " + std::to_string(hidden) + "])");
  }
}

// maskedScatterRows({ base, mask, source, out, rows, hidden })
Napi::Value MaskedScatterRows(const Napi::CallbackInfo& info) {
  Args a(info, "ops.maskedScatterRows", Args::Devices::AnyDevice);
  const int64_t rows = a.positive_int("rows", 0, true), hidden = a.positive_int("hidden", 0, true);
  const std::string shape = "[rows, hidden] = " + dims({rows, hidden});
  const Args::Buffer mask = read_mask(a, rows);
  const float* base = a.f32_buffer("base", rows * hidden, shape);
  const Args::Buffer source = a.buffer("source", "float32");
  float* out = a.f32_buffer("out", rows * hidden, shape);
  const int64_t ones = count_ones(a, mask);
  check_rows(a, "source", source, ones, hidden);
  const int32_t* m = static_cast<const int32_t*>(mask.data);
  const float* src = static_cast<const float*>(source.data);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      // Each row's 0 / 1 flag, its source row (an exclusive scan) and the scan's scratch.
      const size_t bytes = cuda::masked_scatter_workspace_bytes(rows);
      const cuda::DeviceScratch ws(bytes);
      cuda::masked_scatter_rows_forward(base, m, src, rows, hidden, ones, out, ws.as<void>(), bytes, cuda::tensor_stream());
    });
#endif
  cpu::masked_scatter_rows_forward(base, m, src, rows, hidden, out);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("maskedScatterRows", MaskedScatterRows);

// maskedScatterRowsBackward({ grad, mask, rows, hidden, gradBase?, gradSource? })
Napi::Value MaskedScatterRowsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.maskedScatterRowsBackward", Args::Devices::AnyDevice);
  const int64_t rows = a.positive_int("rows", 0, true), hidden = a.positive_int("hidden", 0, true);
  const std::string shape = "[rows, hidden] = " + dims({rows, hidden});
  const Args::Buffer mask = read_mask(a, rows);
  const float* g = a.f32_buffer("grad", rows * hidden, shape);
  float* grad_base = a.f32_buffer("gradBase", rows * hidden, shape, false);
  const Args::Buffer grad_source = a.buffer("gradSource", "float32", false);
  const int64_t ones = count_ones(a, mask);
  check_rows(a, "gradSource", grad_source, ones, hidden);
  const int32_t* m = static_cast<const int32_t*>(mask.data);
  float* gs = static_cast<float*>(grad_source.data);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      const size_t bytes = cuda::masked_scatter_workspace_bytes(rows);
      const cuda::DeviceScratch ws(bytes);
      cuda::masked_scatter_rows_backward(g, m, rows, hidden, ones, grad_base, gs, ws.as<void>(), bytes,
                                         cuda::tensor_stream());
    });
#endif
  cpu::masked_scatter_rows_backward(g, m, rows, hidden, grad_base, gs);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("maskedScatterRowsBackward", MaskedScatterRowsBackward);

}  // namespace
}  // namespace othink
