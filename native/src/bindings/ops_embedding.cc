// Embedding lookup and its scatter-add backward (cpu/embedding.h). Every id is checked against the
// table's rows here, before a kernel runs: a bad id names its position and value, and is never read
// out of bounds. Runs where the tensors are: the CPU kernel, or (CUDA builds) the CUDA twin
// (cuda/embedding.cuh); device ids are checked on the device, and only the verdict comes back.
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/embedding.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/allocator.cuh"
#include "cuda/embedding.cuh"
#endif

namespace othink {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

// Throws unless every id is in [0, vocab). Called once every buffer has been read, so a device
// mismatch or a wrong length is reported before any work on the GPU.
void check_ids(const Args& a, const Args::Buffer& b, int64_t vocab) {
  const int32_t* ids = static_cast<const int32_t*>(b.data);
  const int64_t n = static_cast<int64_t>(b.length);
  int64_t bad = -1;
  int32_t value = 0;
#ifdef OTHINK_WITH_CUDA
  if (b.device == Device::Cuda) {
    // The ids cannot be read from the host: a kernel finds the first bad one, one small copy
    // brings back its position and value.
    run_cuda(a, [&] {
      const cuda::BadId r = cuda::embedding_find_bad_id(ids, n, vocab, cuda::tensor_stream());
      bad = r.index;
      value = r.value;
    });
  }
#endif
  if (b.device == Device::Cpu) {
    for (int64_t i = 0; i < n && bad < 0; ++i)
      if (ids[i] < 0 || ids[i] >= vocab) {
        bad = i;
        value = ids[i];
      }
  }
  if (bad >= 0)
    a.range_error("ids[" + std::to_string(bad) + "] = " + std::to_string(value) + " is out of range for a table of " +
                  std::to_string(vocab) + " rows (ids must be in [0, " + std::to_string(vocab) + "))");
}

// embedding({ ids, table, out, vocab, hidden }): out[i, :] = table[ids[i], :]
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Args a(info, "ops.embedding", Args::Devices::AnyDevice);
  const int64_t vocab = a.positive_int("vocab", 0, true), hidden = a.positive_int("hidden", 0, true);
  const Args::Buffer ids = a.buffer("ids", "int32");
  const int64_t n = static_cast<int64_t>(ids.length);
  const float* table = a.f32_buffer("table", vocab * hidden, "[vocab, hidden] = " + dims({vocab, hidden}));
  float* out = a.f32_buffer("out", n * hidden, "[ids, hidden] = " + dims({n, hidden}));
  check_ids(a, ids, vocab);
  const int32_t* id = static_cast<const int32_t*>(ids.data);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::embedding_forward(id, table, n, vocab, hidden, out, cuda::tensor_stream()); });
#endif
  cpu::embedding_forward(id, table, n, hidden, out);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("embedding", Embedding);

// embeddingBackward({ grad, ids, gradTable, vocab, hidden }): gradTable = scatter-add of grad rows
// (overwritten, not accumulated into).
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.embeddingBackward", Args::Devices::AnyDevice);
  const int64_t vocab = a.positive_int("vocab", 0, true), hidden = a.positive_int("hidden", 0, true);
  const Args::Buffer ids = a.buffer("ids", "int32");
  const int64_t n = static_cast<int64_t>(ids.length);
  const float* g = a.f32_buffer("grad", n * hidden, "[ids, hidden] = " + dims({n, hidden}));
  float* dtable = a.f32_buffer("gradTable", vocab * hidden, "[vocab, hidden] = " + dims({vocab, hidden}));
  check_ids(a, ids, vocab);
  const int32_t* id = static_cast<const int32_t*>(ids.data);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      // The ids sorted with their positions, and the sort's scratch.
      const size_t bytes = cuda::embedding_backward_workspace_bytes(n);
      const cuda::DeviceScratch ws(bytes);
      cuda::embedding_backward(g, id, n, vocab, hidden, dtable, ws.as<void>(), bytes, cuda::tensor_stream());
    });
#endif
  cpu::embedding_backward(g, id, n, vocab, hidden, dtable);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("embeddingBackward", EmbeddingBackward);

}  // namespace
}  // namespace othink
