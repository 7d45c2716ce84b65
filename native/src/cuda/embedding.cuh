// CUDA twin of cpu/embedding.h: the embedding gather and its deterministic scatter-add backward.
// Launchers take device pointers and a stream; plain C++ includes this header.
//
// The caller checks the ids (the N-API bridge does, with embedding_find_bad_id, before either
// launcher): an id outside [0, vocab) still never reads or writes out of bounds here, it gets a row
// of NaN in the forward and contributes nothing to the backward.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace othink::cuda {

// The first id outside [0, vocab): its position in ids and its value; index -1 when there is none.
struct BadId {
  int64_t index;
  int32_t value;
};

// Finds the first id outside [0, vocab) on the device (one pass; each bad id offers its packed
// (position, value) to an atomicMin) and reads the answer back with one 8-byte copy. Unlike the
// launchers it waits: for the work queued on `stream` before it, and for the copy. n < 2^31.
BadId embedding_find_bad_id(const int32_t* ids, int64_t n, int64_t vocab, cudaStream_t stream);

// out[i, :] = table[ids[i], :]; table [vocab, hidden], out [n, hidden]. T: float or __nv_bfloat16.
template <typename T>
void embedding_forward(const int32_t* ids, const T* table, int64_t n, int64_t vocab, int64_t hidden, T* out,
                       cudaStream_t stream);

// Device scratch of embedding_backward, in bytes: the ids sorted with their positions (a stable
// radix sort) and the sort's temporary storage.
size_t embedding_backward_workspace_bytes(int64_t n);

// dtable [vocab, hidden] (float32) = 0, then dtable[ids[i], :] += g[i, :]. Each id's rows are added
// by one block in increasing i (the sort is stable): no atomics, deterministic, and the same
// float32 sums in the same order as the CPU twin. g: T [n, hidden].
template <typename T>
void embedding_backward(const T* g, const int32_t* ids, int64_t n, int64_t vocab, int64_t hidden, float* dtable,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace othink::cuda
