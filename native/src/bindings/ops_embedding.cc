// Embedding lookup and its scatter-add backward (cpu/embedding.h). Every id is checked against the
// table's rows here, before a kernel runs: a bad id names its position and value, and is never read
// out of bounds.
#include <string>

#include "args.h"
#include "bindings/ops_registry.h"
#include "cpu/embedding.h"

namespace othink {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

// The ids as int32, every one in [0, vocab).
const int32_t* read_ids(const Args& a, int64_t vocab, int64_t& n) {
  const Args::Buffer b = a.buffer("ids", "int32");
  const int32_t* ids = static_cast<const int32_t*>(b.data);
  n = static_cast<int64_t>(b.length);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab)
      a.range_error("ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is out of range for a table of " +
                    std::to_string(vocab) + " rows (ids must be in [0, " + std::to_string(vocab) + "))");
  }
  return ids;
}

// embedding({ ids, table, out, vocab, hidden }): out[i, :] = table[ids[i], :]
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Args a(info, "ops.embedding");
  const int64_t vocab = a.positive_int("vocab", 0, true), hidden = a.positive_int("hidden", 0, true);
  int64_t n = 0;
  const int32_t* ids = read_ids(a, vocab, n);
  const float* table = a.f32_buffer("table", vocab * hidden, "[vocab, hidden] = " + dims({vocab, hidden}));
  float* out = a.f32_buffer("out", n * hidden, "[ids, hidden] = " + dims({n, hidden}));
  cpu::embedding_forward(ids, table, n, hidden, out);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("embedding", Embedding);

// embeddingBackward({ grad, ids, gradTable, vocab, hidden }): gradTable = scatter-add of grad rows
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.embeddingBackward");
  const int64_t vocab = a.positive_int("vocab", 0, true), hidden = a.positive_int("hidden", 0, true);
  int64_t n = 0;
  const int32_t* ids = read_ids(a, vocab, n);
  const float* g = a.f32_buffer("grad", n * hidden, "[ids, hidden] = " + dims({n, hidden}));
  float* dtable = a.f32_buffer("gradTable", vocab * hidden, "[vocab, hidden] = " + dims({vocab, hidden}));
  cpu::embedding_backward(g, ids, n, vocab, hidden, dtable);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("embeddingBackward", EmbeddingBackward);

}  // namespace
}  // namespace othink
