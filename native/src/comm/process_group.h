// One process's membership of a data-parallel job: the rendezvous store (served by rank 0), gloo
// for CPU memory and NCCL for CUDA memory. Collectives are synchronous: they return when this
// rank's result is in place, or throw CommError (a dead peer, the timeout), after which the group
// refuses further collectives with the first error.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "comm/store.h"
#include "comm/types.h"
#include "storage.h"

namespace othink::comm {

#ifdef OTHINK_WITH_GLOO
class GlooGroup;
#endif
#ifdef OTHINK_WITH_CUDA
class NcclGroup;
#endif

struct GroupConfig {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: an ephemeral port (world size 1 only: nobody else needs to know it)
  std::chrono::milliseconds timeout{1800000};
};

// Whether this build has gloo (the CPU backend for more than one process).
bool built_with_gloo();

class ProcessGroup {
 public:
  // Rank 0 starts the store; every rank joins it and (with gloo) connects to the others. Throws
  // CommError: the port taken, the master unreachable, a WORLD_SIZE mismatch, no gloo.
  explicit ProcessGroup(const GroupConfig& config);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return config_.rank; }
  int world_size() const { return config_.world_size; }
  // The store's port (the ephemeral one when master_port was 0).
  int store_port() const { return store_port_; }

  void all_reduce(void* data, size_t n, DType type, ReduceOp op, Device device);
  void broadcast(void* data, size_t n, DType type, int root, Device device);
  void all_gather(const void* in, void* out, size_t n, DType type, Device device);
  void barrier();

 private:
  // Runs one collective: refuses when an earlier one failed, and remembers a failure.
  template <typename F>
  void guarded(const char* what, F&& f);
#ifdef OTHINK_WITH_CUDA
  NcclGroup& nccl();
#endif

  GroupConfig config_;
  int store_port_ = 0;
  std::unique_ptr<StoreServer> server_;
  std::unique_ptr<StoreClient> store_;
#ifdef OTHINK_WITH_GLOO
  std::unique_ptr<GlooGroup> gloo_;
#endif
#ifdef OTHINK_WITH_CUDA
  std::unique_ptr<NcclGroup> nccl_;
#endif
  std::string failed_;
};

}  // namespace othink::comm
