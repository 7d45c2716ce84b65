// The stream of tensor work on the GPU, and what that means for callers.
//
// Every tensor op launcher, storage copy (cudaMemcpy), zero fill and cuBLAS call is enqueued on
// the legacy default stream (the build never passes --default-stream per-thread), in the order
// JS calls them. So:
//   - ops are asynchronous: a binding returns once its kernels are queued; the next op sees their
//     results because it is queued behind them;
//   - reading a tensor back (Storage.read, item(), sumSquares' number) waits for everything queued
//     before it (cudaMemcpy to the host blocks), so JS never sees stale values;
//   - memory freed while queued kernels still use it may be handed out again at once (the caching
//     allocator): its next owner's work is queued behind those kernels;
//   - an error inside a kernel (not a launch error: those throw from the launching op) surfaces at
//     the next synchronising call. CUDA_LAUNCH_BLOCKING=1 makes every launch synchronous, so the
//     op that failed throws.
// Host-only: plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

namespace othink::cuda {

// The stream the tensor ops run on (the legacy default stream).
inline cudaStream_t tensor_stream() { return nullptr; }

}  // namespace othink::cuda
