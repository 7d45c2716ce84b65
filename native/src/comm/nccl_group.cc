#ifdef OTHINK_WITH_CUDA
#include "comm/nccl_group.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace othink::comm {

namespace {

// The part of nccl.h this file calls, as in NCCL 2.x (the ABI has been stable since 2.0; ncclAvg
// exists from 2.10). Declared here so no NCCL headers are needed to build.
typedef struct ncclComm* ncclComm_t;
constexpr int kNcclUniqueIdBytes = 128;
typedef struct {
  char internal[kNcclUniqueIdBytes];
} ncclUniqueId;
typedef enum { ncclSuccess = 0, ncclInProgress = 7 } ncclResult_t;
typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;
typedef enum { ncclInt32 = 2, ncclFloat32 = 7, ncclFloat64 = 8 } ncclDataType_t;

struct NcclApi {
  ncclResult_t (*GetUniqueId)(ncclUniqueId*);
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
  ncclResult_t (*Broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*AllGather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
  ncclResult_t (*CommDestroy)(ncclComm_t);
  ncclResult_t (*CommAbort)(ncclComm_t);
  const char* (*GetErrorString)(ncclResult_t);
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*);
};

std::once_flag load_once;
NcclApi api_table;
std::string load_error;

void load() {
  // OTHINK_NCCL_LIBRARY picks a library elsewhere (pip's nvidia-nccl wheel, a custom build).
  const char* custom = std::getenv("OTHINK_NCCL_LIBRARY");
  const char* name = custom && *custom ? custom : "libnccl.so.2";
  void* h = ::dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* err = ::dlerror();
    load_error = std::string("cannot load ") + name + " (" + (err ? err : "not found") +
                 "): install NCCL 2 (the libnccl2 package, or pip's nvidia-nccl-cu12 with its lib folder on "
                 "LD_LIBRARY_PATH), or set OTHINK_NCCL_LIBRARY to the library's path";
    return;
  }
  auto sym = [&](const char* s) -> void* {
    void* p = ::dlsym(h, s);
    if (!p && load_error.empty()) load_error = std::string(name) + " has no symbol " + s + " (not NCCL 2?)";
    return p;
  };
  api_table.GetUniqueId = reinterpret_cast<decltype(api_table.GetUniqueId)>(sym("ncclGetUniqueId"));
  api_table.CommInitRank = reinterpret_cast<decltype(api_table.CommInitRank)>(sym("ncclCommInitRank"));
  api_table.AllReduce = reinterpret_cast<decltype(api_table.AllReduce)>(sym("ncclAllReduce"));
  api_table.Broadcast = reinterpret_cast<decltype(api_table.Broadcast)>(sym("ncclBroadcast"));
  api_table.AllGather = reinterpret_cast<decltype(api_table.AllGather)>(sym("ncclAllGather"));
  api_table.CommDestroy = reinterpret_cast<decltype(api_table.CommDestroy)>(sym("ncclCommDestroy"));
  api_table.CommAbort = reinterpret_cast<decltype(api_table.CommAbort)>(sym("ncclCommAbort"));
  api_table.GetErrorString = reinterpret_cast<decltype(api_table.GetErrorString)>(sym("ncclGetErrorString"));
  api_table.CommGetAsyncError = reinterpret_cast<decltype(api_table.CommGetAsyncError)>(sym("ncclCommGetAsyncError"));
}

const NcclApi& api() {
  std::call_once(load_once, load);
  if (!load_error.empty()) throw CommError(load_error);
  return api_table;
}

ncclComm_t as_comm(void* p) { return static_cast<ncclComm_t>(p); }

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::I32: return ncclInt32;
    case DType::F64: return ncclFloat64;
    default: return ncclFloat32;
  }
}

}  // namespace

std::string nccl_unavailable_reason() {
  try {
    api();
    return "";
  } catch (const CommError& e) {
    return e.what();
  }
}

void NcclGroup::check(int result, const char* what) {
  if (result == ncclSuccess) return;
  throw CommError(std::string(what) + " failed on rank " + std::to_string(rank_) + " (NCCL: " +
                  api().GetErrorString(static_cast<ncclResult_t>(result)) + ")");
}

NcclGroup::NcclGroup(StoreClient& store, const std::string& key, int rank, int world_size, std::chrono::milliseconds timeout)
    : rank_(rank), timeout_(timeout) {
  const NcclApi& nccl = api();
  ncclUniqueId id;
  if (rank == 0) {
    check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
    store.set(key, std::string(id.internal, kNcclUniqueIdBytes));
  } else {
    const std::string v = store.get(key, timeout);
    if (v.size() != kNcclUniqueIdBytes) throw CommError("the NCCL unique id in the store has the wrong size");
    std::copy(v.begin(), v.end(), id.internal);
  }
  // Blocks until every rank has called it; all of them have just gone through the store, so they
  // are alive.
  ncclComm_t comm = nullptr;
  check(nccl.CommInitRank(&comm, world_size, id, rank), "ncclCommInitRank");
  comm_ = comm;
  if (cudaEventCreateWithFlags(&done_, cudaEventDisableTiming) != cudaSuccess) {
    nccl.CommDestroy(comm);
    comm_ = nullptr;
    throw CommError("cudaEventCreate failed");
  }
}

NcclGroup::~NcclGroup() {
  if (done_) cudaEventDestroy(done_);
  if (!comm_) return;
  // A communicator whose peers may be gone (aborted after an error) must not be destroyed: that
  // waits for them. Abort releases it without waiting.
  if (aborted_) return;
  api().CommDestroy(as_comm(comm_));
}

void NcclGroup::finish(const char* what, cudaStream_t stream) {
  const NcclApi& nccl = api();
  if (cudaEventRecord(done_, stream) != cudaSuccess) throw CommError(std::string(what) + ": cudaEventRecord failed");
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    const cudaError_t q = cudaEventQuery(done_);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady)
      throw CommError(std::string(what) + " failed on rank " + std::to_string(rank_) + " (CUDA: " + cudaGetErrorString(q) + ")");
    ncclResult_t async = ncclSuccess;
    nccl.CommGetAsyncError(as_comm(comm_), &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      nccl.CommAbort(as_comm(comm_));
      aborted_ = true;
      throw CommError(std::string(what) + " failed on rank " + std::to_string(rank_) +
                      ": NCCL reported an error, another rank may have died (NCCL: " + nccl.GetErrorString(async) + ")");
    }
    if (Clock::now() > deadline) {
      nccl.CommAbort(as_comm(comm_));
      aborted_ = true;
      throw CommError(std::string(what) + " timed out after " + format_seconds(timeout_) + " on rank " +
                      std::to_string(rank_) + ": another rank is stuck, died, or is slower than the timeout (NCCL)");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclGroup::all_reduce(void* data, size_t n, DType type, ReduceOp op, cudaStream_t stream) {
  const ncclRedOp_t r = op == ReduceOp::Mean ? ncclAvg : op == ReduceOp::Max ? ncclMax : op == ReduceOp::Min ? ncclMin : ncclSum;
  check(api().AllReduce(data, data, n, nccl_type(type), r, as_comm(comm_), stream), "allReduce");
  finish("allReduce", stream);
}

void NcclGroup::broadcast(void* data, size_t n, DType type, int root, cudaStream_t stream) {
  check(api().Broadcast(data, data, n, nccl_type(type), root, as_comm(comm_), stream), "broadcast");
  finish("broadcast", stream);
}

void NcclGroup::all_gather(const void* in, void* out, size_t n, DType type, cudaStream_t stream) {
  check(api().AllGather(in, out, n, nccl_type(type), as_comm(comm_), stream), "allGather");
  finish("allGather", stream);
}

}  // namespace othink::comm
#endif
