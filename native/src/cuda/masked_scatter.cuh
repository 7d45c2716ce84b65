// CUDA twin of cpu/masked_scatter.h: rows of base whose mask is set are replaced, in row order, by
// the rows of source (spec §4); the backward splits the gradient between base and source.
// Launchers take device pointers and a stream; plain C++ includes this header.
//
// `ones` is the number of set mask values, which the caller has counted and checked against
// source's rows (the N-API bridge does, with masked_scatter_check_mask, as the CPU binding). Any nonzero mask value counts as set;
// a k-th set row with k >= ones (a wrong count) gets NaN and never reads out of bounds.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace othink::cuda {

// What the CPU binding reads off the mask on the host: the number of ones, and the first value
// that is neither 0 nor 1 (bad_index -1 when there is none).
struct MaskSummary {
  int64_t ones;
  int64_t bad_index;
  int32_t bad_value;
};

// The mask's summary, computed on the device (block sums of the ones, an atomicMin of each bad
// value's packed (position, value)) and read back with one 16-byte copy. Unlike the launchers it
// waits: for the work queued on `stream` before it, and for the copy. rows < 2^31.
MaskSummary masked_scatter_check_mask(const int32_t* mask, int64_t rows, cudaStream_t stream);

// Device scratch of both launchers, in bytes: the 0 / 1 flags, their exclusive prefix sum (each
// row's source index) and CUB's scan storage.
size_t masked_scatter_workspace_bytes(int64_t rows);

// out [rows, hidden] = base with the k-th set row replaced by source[k]; out may alias base.
// T: float or __nv_bfloat16.
template <typename T>
void masked_scatter_rows_forward(const T* base, const int32_t* mask, const T* source, int64_t rows, int64_t hidden,
                                 int64_t ones, T* out, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// grad_base = g with the set rows zeroed; grad_source [ones, hidden] = the set rows of g in order.
// Either output may be null.
template <typename T>
void masked_scatter_rows_backward(const T* g, const int32_t* mask, int64_t rows, int64_t hidden, int64_t ones,
                                  T* grad_base, T* grad_source, void* workspace, size_t workspace_bytes,
                                  cudaStream_t stream);

}  // namespace othink::cuda
