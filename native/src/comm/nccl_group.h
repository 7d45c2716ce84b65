// The CUDA backend: NCCL, loaded at run time (dlopen("libnccl.so.2")), so a CUDA build links no
// NCCL, one process needs none, and CI compiles this without NCCL headers. CUDA builds only.
//
// Collectives are queued on the tensor stream (cuda/stream.cuh) behind the ops that produced their
// input, then waited for on the host with a watchdog: a peer that died leaves an NCCL kernel
// spinning forever, so past the timeout (or on an asynchronous NCCL error) the communicator is
// aborted and the call throws, as torch's NCCL watchdog does.
#pragma once
#ifdef OTHINK_WITH_CUDA
#include <cuda_runtime_api.h>

#include <chrono>
#include <string>

#include "comm/store.h"
#include "comm/types.h"

namespace othink::comm {

// Why libnccl.so.2 cannot be used here ("" when it can); loads it on first call.
std::string nccl_unavailable_reason();

class NcclGroup {
 public:
  // Rank 0 makes the unique id and hands it out through the store under `key`; then every rank
  // joins the communicator on the current CUDA device.
  NcclGroup(StoreClient& store, const std::string& key, int rank, int world_size, std::chrono::milliseconds timeout);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  // Device memory, in place; float32 / int32.
  void all_reduce(void* data, size_t n, DType type, ReduceOp op, cudaStream_t stream);
  void broadcast(void* data, size_t n, DType type, int root, cudaStream_t stream);
  void all_gather(const void* in, void* out, size_t n, DType type, cudaStream_t stream);

 private:
  void check(int result, const char* what);
  // Waits for the collective just queued on stream, with the watchdog.
  void finish(const char* what, cudaStream_t stream);

  int rank_;
  std::chrono::milliseconds timeout_;
  void* comm_ = nullptr;  // ncclComm_t
  cudaEvent_t done_ = nullptr;
  bool aborted_ = false;
};

}  // namespace othink::comm
#endif
