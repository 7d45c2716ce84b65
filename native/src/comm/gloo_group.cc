#ifdef OTHINK_WITH_GLOO
#include "comm/gloo_group.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace othink::comm {

namespace {

// gloo's rendezvous reads and writes the pair addresses through this: our store, keys under gloo/.
class GlooStore : public gloo::rendezvous::Store {
 public:
  GlooStore(StoreClient& store, std::chrono::milliseconds timeout) : store_(store), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    store_.set("gloo/" + key, std::string(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    const std::string v = store_.get("gloo/" + key, timeout_);
    return std::vector<char>(v.begin(), v.end());
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> prefixed;
    std::string ranks;
    for (const std::string& k : keys) {
      prefixed.push_back("gloo/" + k);
      ranks += (ranks.empty() ? "" : ", ") + k;  // gloo's keys are the ranks whose addresses it needs
    }
    try {
      store_.wait(prefixed, timeout);
    } catch (const CommError& e) {
      if (std::string(e.what()).find("timed out") == std::string::npos) throw;
      throw CommError("timed out after " + format_seconds(timeout) + " waiting for rank " + ranks + " to join through the store at " +
                      store_.address() + ": it did not start (check WORLD_SIZE and that every rank was launched) or it died");
    }
  }

 private:
  StoreClient& store_;
  std::chrono::milliseconds timeout_;
};

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

template <typename T>
ReduceFn reduce_fn(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max: return &gloo::max<T>;
    case ReduceOp::Min: return &gloo::min<T>;
    default: return &gloo::sum<T>;  // Mean: the sum, divided afterwards
  }
}

// gloo reports a dead peer and a timeout as gloo::IoException with its source location first; say
// what it means for the job.
[[noreturn]] void rethrow(const char* what, int rank, std::chrono::milliseconds timeout, const std::exception& e) {
  std::string msg = e.what();
  const size_t bracket = msg.find("] ");
  if (!msg.empty() && msg[0] == '[' && bracket != std::string::npos) msg = msg.substr(bracket + 2);
  if (msg.find("Timed out") != std::string::npos || msg.find("timed out") != std::string::npos)
    throw CommError(std::string(what) + " timed out after " + format_seconds(timeout) + " on rank " + std::to_string(rank) +
                    ": another rank is stuck, or slower than the timeout (gloo: " + msg + ")");
  if (msg.find("closed") != std::string::npos || msg.find("reset") != std::string::npos ||
      msg.find("Broken pipe") != std::string::npos)
    throw CommError(std::string(what) + " failed on rank " + std::to_string(rank) +
                    ": a peer closed its connection, another rank died or was stopped (gloo: " + msg + ")");
  throw CommError(std::string(what) + " failed on rank " + std::to_string(rank) + " (gloo: " + msg + ")");
}

}  // namespace

GlooGroup::GlooGroup(StoreClient& store, int rank, int world_size, std::chrono::milliseconds timeout)
    : rank_(rank), world_size_(world_size), timeout_(timeout) {
  gloo::transport::tcp::attr attr;
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    attr.iface = ifname;
  } else {
    attr.hostname = store.local_address();
  }
  try {
    device_ = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, world_size);
    context->setTimeout(timeout);
    GlooStore gloo_store(store, timeout);
    context->connectFullMesh(gloo_store, device_);
    context_ = context;
  } catch (const CommError&) {
    throw;  // the store's own error (a timeout naming the keys, a rank that left) says it best
  } catch (const std::exception& e) {
    rethrow("connecting the ranks (gloo)", rank, timeout, e);
  }
}

GlooGroup::~GlooGroup() = default;

void GlooGroup::all_reduce(void* data, size_t n, DType type, ReduceOp op) {
  try {
    gloo::AllreduceOptions o(context_);
    o.setTag(next_tag());
    o.setTimeout(timeout_);
    switch (type) {
      case DType::F32:
        o.setOutput(static_cast<float*>(data), n);
        o.setReduceFunction(reduce_fn<float>(op));
        break;
      case DType::I32:
        o.setOutput(static_cast<int32_t*>(data), n);
        o.setReduceFunction(reduce_fn<int32_t>(op));
        break;
      case DType::F64:
        o.setOutput(static_cast<double*>(data), n);
        o.setReduceFunction(reduce_fn<double>(op));
        break;
    }
    gloo::allreduce(o);
  } catch (const std::exception& e) {
    rethrow("allReduce", rank_, timeout_, e);
  }
  if (op == ReduceOp::Mean) {
    // gloo has no average: divide the sum here (float types only, checked by the caller).
    if (type == DType::F32) {
      float* p = static_cast<float*>(data);
      for (size_t i = 0; i < n; ++i) p[i] /= static_cast<float>(world_size_);
    } else if (type == DType::F64) {
      double* p = static_cast<double*>(data);
      for (size_t i = 0; i < n; ++i) p[i] /= world_size_;
    }
  }
}

void GlooGroup::broadcast(void* data, size_t n, DType type, int root) {
  try {
    gloo::BroadcastOptions o(context_);
    o.setTag(next_tag());
    o.setTimeout(timeout_);
    o.setRoot(root);
    // Output only: gloo then broadcasts in place (the root sends its buffer, the others receive).
    if (type == DType::F64) o.setOutput(static_cast<double*>(data), n);
    else o.setOutput(static_cast<float*>(data), n);  // int32 and float32 move the same 4-byte words
    gloo::broadcast(o);
  } catch (const std::exception& e) {
    rethrow("broadcast", rank_, timeout_, e);
  }
}

void GlooGroup::all_gather(const void* in, void* out, size_t n, DType type) {
  try {
    gloo::AllgatherOptions o(context_);
    o.setTag(next_tag());
    o.setTimeout(timeout_);
    // gloo takes a non-const input pointer but only reads it.
    if (type == DType::F64) {
      o.setInput(const_cast<double*>(static_cast<const double*>(in)), n);
      o.setOutput(static_cast<double*>(out), n * world_size_);
    } else {
      o.setInput(const_cast<float*>(static_cast<const float*>(in)), n);
      o.setOutput(static_cast<float*>(out), n * world_size_);
    }
    gloo::allgather(o);
  } catch (const std::exception& e) {
    rethrow("allGather", rank_, timeout_, e);
  }
}

void GlooGroup::barrier() {
  try {
    gloo::BarrierOptions o(context_);
    o.setTag(next_tag());
    o.setTimeout(timeout_);
    gloo::barrier(o);
  } catch (const std::exception& e) {
    rethrow("barrier", rank_, timeout_, e);
  }
}

}  // namespace othink::comm
#endif
