// Embedding lookup (spec §3.1: E[input_ids], no scaling, no padding_idx) and its backward, the
// scatter-add of the output gradient into a dense table gradient. The ids are checked to lie in
// [0, vocab) by the caller (bindings/ops_embedding.cc) before either runs.
#pragma once
#include <cstdint>

namespace othink::cpu {

// out[i, :] = table[ids[i], :] for i < n; table [vocab, hidden], out [n, hidden].
void embedding_forward(const int32_t* ids, const float* table, int64_t n, int64_t hidden, float* out);

// dtable = 0, then dtable[ids[i], :] += g[i, :] for i = 0..n-1 in order: repeated ids accumulate,
// and every row of dtable is summed in the same order whatever the number of threads
// (deterministic). dtable [vocab, hidden] is fully written.
void embedding_backward(const float* g, const int32_t* ids, int64_t n, int64_t vocab, int64_t hidden,
                        float* dtable);

}  // namespace othink::cpu
