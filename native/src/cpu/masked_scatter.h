// The masked scatter that merges image features into the token embeddings (spec §4): the rows of
// base whose mask is 1 are replaced, in row order, by the rows of source; the k-th masked row gets
// source row k. The caller (bindings/ops_masked_scatter.cc) checks that the mask holds only 0 / 1
// and that source has exactly as many rows as the mask has ones.
#pragma once
#include <cstdint>

namespace othink::cpu {

// out [rows, hidden] = base with masked rows taken from source [ones, hidden]. out may alias base.
void masked_scatter_rows_forward(const float* base, const int32_t* mask, const float* source, int64_t rows,
                                 int64_t hidden, float* out);

// grad_base = g with the masked rows zeroed (they never reach the output: no gradient, spec §4.3);
// grad_source[k] = g[k-th masked row]. Either output may be null (not computed).
void masked_scatter_rows_backward(const float* g, const int32_t* mask, int64_t rows, int64_t hidden,
                                  float* grad_base, float* grad_source);

}  // namespace othink::cpu
