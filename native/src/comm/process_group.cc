#include "comm/process_group.h"

#include <cstring>

#ifdef OTHINK_WITH_GLOO
#include "comm/gloo_group.h"
#endif
#ifdef OTHINK_WITH_CUDA
#include "comm/nccl_group.h"
#include "cuda/stream.cuh"
#endif

namespace othink::comm {

bool built_with_gloo() {
#ifdef OTHINK_WITH_GLOO
  return true;
#else
  return false;
#endif
}

ProcessGroup::ProcessGroup(const GroupConfig& config) : config_(config) {
  const int rank = config.rank, world = config.world_size;
  if (world < 1) throw CommError("WORLD_SIZE must be >= 1 (got " + std::to_string(world) + ")");
  if (rank < 0 || rank >= world)
    throw CommError("RANK " + std::to_string(rank) + " is out of range for WORLD_SIZE " + std::to_string(world) +
                    " (ranks are 0.." + std::to_string(world - 1) + ")");
  if (!built_with_gloo() && world > 1)
    throw CommError("built without gloo: install libgloo-dev and rebuild (pnpm build) to run " + std::to_string(world) +
                    " processes; a single process needs no collective library");
  if (rank == 0) {
    server_ = std::make_unique<StoreServer>(config.master_port, world);
    store_port_ = server_->port();
  } else {
    if (config.master_port <= 0) throw CommError("MASTER_PORT is required for rank " + std::to_string(rank));
    store_port_ = config.master_port;
  }
  // Rank 0 is a client of its own store like everyone else, through MASTER_ADDR: the address its
  // connection comes from is then the one the other nodes reach it on (gloo's pairs listen there).
  store_ = std::make_unique<StoreClient>(config.master_addr, store_port_, rank, world, config.timeout);
#ifdef OTHINK_WITH_GLOO
  gloo_ = std::make_unique<GlooGroup>(*store_, rank, world, config.timeout);
#endif
}

// Members go in reverse order: NCCL and gloo before the store, rank 0's server last.
ProcessGroup::~ProcessGroup() = default;

template <typename F>
void ProcessGroup::guarded(const char* what, F&& f) {
  if (!failed_.empty())
    throw CommError(std::string(what) + ": the process group failed earlier and cannot be used again (" + failed_ + ")");
  try {
    f();
  } catch (const CommError& e) {
    failed_ = e.what();
    throw;
  }
}

#ifdef OTHINK_WITH_CUDA
NcclGroup& ProcessGroup::nccl() {
  // Created at the first CUDA collective, which every rank reaches in the same order (as torch
  // does): a CPU-only job never loads NCCL.
  if (!nccl_) nccl_ = std::make_unique<NcclGroup>(*store_, "nccl/unique-id", config_.rank, config_.world_size, config_.timeout);
  return *nccl_;
}
#endif

void ProcessGroup::all_reduce(void* data, size_t n, DType type, ReduceOp op, Device device) {
  guarded("allReduce", [&] {
#ifdef OTHINK_WITH_CUDA
    if (device == Device::Cuda) return nccl().all_reduce(data, n, type, op, cuda::tensor_stream());
#endif
    (void)device;
#ifdef OTHINK_WITH_GLOO
    gloo_->all_reduce(data, n, type, op);
#else
    (void)data, (void)n, (void)type, (void)op;  // one process: every reduction of one value is that value
#endif
  });
}

void ProcessGroup::broadcast(void* data, size_t n, DType type, int root, Device device) {
  if (root < 0 || root >= config_.world_size)
    throw CommError("broadcast: root " + std::to_string(root) + " is not a rank of this group (0.." +
                    std::to_string(config_.world_size - 1) + ")");
  guarded("broadcast", [&] {
#ifdef OTHINK_WITH_CUDA
    if (device == Device::Cuda) return nccl().broadcast(data, n, type, root, cuda::tensor_stream());
#endif
    (void)device;
#ifdef OTHINK_WITH_GLOO
    gloo_->broadcast(data, n, type, root);
#else
    (void)data, (void)n, (void)type;  // one process: it is the root
#endif
  });
}

void ProcessGroup::all_gather(const void* in, void* out, size_t n, DType type, Device device) {
  guarded("allGather", [&] {
#ifdef OTHINK_WITH_CUDA
    if (device == Device::Cuda) return nccl().all_gather(in, out, n, type, cuda::tensor_stream());
#endif
    (void)device;
#ifdef OTHINK_WITH_GLOO
    gloo_->all_gather(in, out, n, type);
#else
    std::memcpy(out, in, n * dtype_size(type));  // one process: its own input is everything
#endif
  });
}

void ProcessGroup::barrier() {
  guarded("barrier", [&] {
#ifdef OTHINK_WITH_GLOO
    gloo_->barrier();
#endif
  });
}

}  // namespace othink::comm
