// The CPU backend: gloo (Facebook's collective library, torch's CPU backend) over its TCP transport.
// Built only when CMake finds gloo (OTHINK_WITH_GLOO); process_group.cc reports its absence.
#pragma once
#ifdef OTHINK_WITH_GLOO
#include <chrono>
#include <cstdint>
#include <memory>

#include "comm/store.h"
#include "comm/types.h"

namespace gloo {
class Context;
namespace transport {
class Device;
}
}  // namespace gloo

namespace othink::comm {

class GlooGroup {
 public:
  // Connects this rank to every other one (a full mesh of TCP pairs whose addresses go through the
  // store). Peers are reached on the address this rank reaches the store from, or on the
  // interface GLOO_SOCKET_IFNAME names (as in torch).
  GlooGroup(StoreClient& store, int rank, int world_size, std::chrono::milliseconds timeout);
  ~GlooGroup();

  // In place on host memory; every rank passes the same n and type.
  void all_reduce(void* data, size_t n, DType type, ReduceOp op);
  void broadcast(void* data, size_t n, DType type, int root);
  // out holds world_size * n elements, rank r's input at r * n.
  void all_gather(const void* in, void* out, size_t n, DType type);
  void barrier();

 private:
  // Each collective gets the next tag: every rank calls them in the same order, so the tags match,
  // and messages of consecutive collectives can never be confused.
  uint32_t next_tag() { return tag_++; }

  int rank_;
  int world_size_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  uint32_t tag_ = 0;
};

}  // namespace othink::comm
#endif
