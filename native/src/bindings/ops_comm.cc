// The communicator (comm/): process groups and their collectives, for @othink/core's distributed
// module. A group is a number handed back by distInit; collectives run synchronously on the
// calling thread, in place on float32 / int32 tensors (CPU: gloo, CUDA: NCCL) or host typed arrays
// (Float64Array too, for metrics summed in double).
#include <map>
#include <memory>
#include <string>

#include "args.h"
#include "bindings/ops_registry.h"
#include "comm/process_group.h"
#ifdef OTHINK_WITH_CUDA
#include "comm/nccl_group.h"
#endif

namespace othink {
namespace {

struct Groups {
  std::map<int, std::unique_ptr<comm::ProcessGroup>> live;
  int next = 1;
  bool cleanup_hook = false;
};

// Never freed: a process that exits without destroy() must not run the groups' destructors from
// static destruction (they join threads). The env cleanup hook below destroys them on a normal exit.
Groups& groups() {
  static Groups* g = new Groups();
  return *g;
}

comm::ProcessGroup& group(const Args& a) {
  const int id = static_cast<int>(a.positive_int("group", 0, true));
  auto it = groups().live.find(id);
  if (it == groups().live.end()) a.error("group " + std::to_string(id) + " was destroyed (or never created)");
  return *it->second;
}

// A C++ failure of the communicator becomes a JS Error naming the call (node-addon-api converts
// only Napi::Error; anything else escaping would end the process).
template <typename F>
Napi::Value run(const Args& a, F&& f) {
  try {
    f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    a.error(e.what());
  }
  return a.env().Undefined();
}

struct CommBuffer {
  void* data = nullptr;
  size_t length = 0;
  comm::DType type = comm::DType::F32;
  Device device = Device::Cpu;
};

// A float32 / int32 tensor or typed array, or a Float64Array.
CommBuffer read_buffer(const Args& a, const char* name) {
  const Napi::Value v = a.value(name);
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    Napi::Float64Array f = v.As<Napi::Float64Array>();
    return {f.Data(), f.ElementLength(), comm::DType::F64, Device::Cpu};
  }
  std::string dtype = "float32";
  if (v.IsTypedArray()) {
    if (v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) dtype = "int32";
  } else if (v.IsObject() && v.As<Napi::Object>().Get("dtype").IsString()) {
    dtype = v.As<Napi::Object>().Get("dtype").As<Napi::String>().Utf8Value();
    if (dtype != "float32" && dtype != "int32")
      a.type_error(std::string(name) + " has dtype " + dtype + "; collectives take float32 or int32 tensors");
  }
  Args::Buffer b = a.buffer(name, dtype.c_str());
  return {b.data, b.length, dtype == "int32" ? comm::DType::I32 : comm::DType::F32, b.device};
}

void destroy_all(void*) { groups().live.clear(); }

// distInit({ rank, worldSize, masterAddr, masterPort, timeoutMs }) -> { group, storePort }
// Blocks until every rank has joined (or throws: port taken, master unreachable, mismatched
// WORLD_SIZE, timeout, no gloo).
Napi::Value DistInit(const Napi::CallbackInfo& info) {
  Args a(info, "distInit");
  comm::GroupConfig c;
  const double world = a.number("worldSize", 0, true), rank = a.number("rank", 0, true);
  if (world != static_cast<int>(world) || world < 1) a.range_error("worldSize must be an integer >= 1 (got " + Args::format(world) + ")");
  if (rank != static_cast<int>(rank) || rank < 0 || rank >= world)
    a.range_error("rank must be an integer in [0, worldSize) (got " + Args::format(rank) + " with worldSize " + Args::format(world) + ")");
  c.world_size = static_cast<int>(world);
  c.rank = static_cast<int>(rank);
  if (a.has("masterAddr")) {
    const Napi::Value v = a.value("masterAddr");
    if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) a.type_error("masterAddr must be a non-empty string");
    c.master_addr = v.As<Napi::String>().Utf8Value();
  }
  const double port = a.number("masterPort", 0);
  if (port != static_cast<int>(port) || port < 0 || port > 65535)
    a.range_error("masterPort must be an integer in [0, 65535] (got " + Args::format(port) + ")");
  c.master_port = static_cast<int>(port);
  if (c.master_port == 0 && c.world_size > 1) a.range_error("masterPort is required when worldSize > 1");
  c.timeout = std::chrono::milliseconds(a.positive_int("timeoutMs", 1800000));
  std::unique_ptr<comm::ProcessGroup> g;
  run(a, [&] { g = std::make_unique<comm::ProcessGroup>(c); });
  Groups& all = groups();
  if (!all.cleanup_hook) {
    napi_add_env_cleanup_hook(info.Env(), destroy_all, nullptr);
    all.cleanup_hook = true;
  }
  const int id = all.next++;
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("group", id);
  out.Set("storePort", g->store_port());
  all.live.emplace(id, std::move(g));
  return out;
}
OTHINK_REGISTER_OP("distInit", DistInit);

// distAllReduce({ group, tensor, op = 'sum' }): in place; op 'sum' | 'mean' | 'max' | 'min'.
Napi::Value DistAllReduce(const Napi::CallbackInfo& info) {
  Args a(info, "distAllReduce", Args::Devices::AnyDevice);
  comm::ProcessGroup& g = group(a);
  const CommBuffer b = read_buffer(a, "tensor");
  const std::string op = a.choice("op", "sum", {"sum", "mean", "max", "min"});
  if (op == "mean" && b.type == comm::DType::I32)
    a.type_error("op 'mean' needs a float tensor (an int32 mean is not an int32): use 'sum' and divide");
  const comm::ReduceOp r = op == "mean" ? comm::ReduceOp::Mean
                           : op == "max" ? comm::ReduceOp::Max
                           : op == "min" ? comm::ReduceOp::Min
                                         : comm::ReduceOp::Sum;
  return run(a, [&] { g.all_reduce(b.data, b.length, b.type, r, b.device); });
}
OTHINK_REGISTER_OP("distAllReduce", DistAllReduce);

// distBroadcast({ group, tensor, root = 0 }): the root's values into every rank's tensor.
Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  Args a(info, "distBroadcast", Args::Devices::AnyDevice);
  comm::ProcessGroup& g = group(a);
  const CommBuffer b = read_buffer(a, "tensor");
  const double root = a.number("root", 0);
  if (root != static_cast<int>(root) || root < 0 || root >= g.world_size())
    a.range_error("root must be a rank of the group, 0.." + std::to_string(g.world_size() - 1) + " (got " + Args::format(root) + ")");
  return run(a, [&] { g.broadcast(b.data, b.length, b.type, static_cast<int>(root), b.device); });
}
OTHINK_REGISTER_OP("distBroadcast", DistBroadcast);

// distAllGather({ group, input, output }): output (worldSize * input's length, same type and
// device) gets rank r's input at r * length.
Napi::Value DistAllGather(const Napi::CallbackInfo& info) {
  Args a(info, "distAllGather", Args::Devices::AnyDevice);
  comm::ProcessGroup& g = group(a);
  const CommBuffer in = read_buffer(a, "input");
  const CommBuffer out = read_buffer(a, "output");
  if (in.type != out.type)
    a.type_error(std::string("output is ") + comm::dtype_name(out.type) + " but input is " + comm::dtype_name(in.type));
  if (in.device != out.device) a.error("input and output must be on the same device");
  if (out.length != in.length * g.world_size())
    a.range_error("output has " + std::to_string(out.length) + " elements; expected worldSize * input = " +
                  std::to_string(g.world_size()) + " * " + std::to_string(in.length));
  return run(a, [&] { g.all_gather(in.data, out.data, in.length, in.type, in.device); });
}
OTHINK_REGISTER_OP("distAllGather", DistAllGather);

// distBarrier({ group }): returns when every rank has called it.
Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  Args a(info, "distBarrier");
  comm::ProcessGroup& g = group(a);
  return run(a, [&] { g.barrier(); });
}
OTHINK_REGISTER_OP("distBarrier", DistBarrier);

// distDestroy({ group }): closes the connections (rank 0: stops the store). Idempotent.
Napi::Value DistDestroy(const Napi::CallbackInfo& info) {
  Args a(info, "distDestroy");
  const int id = static_cast<int>(a.positive_int("group", 0, true));
  groups().live.erase(id);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("distDestroy", DistDestroy);

// distBackends() -> { gloo, nccl, ncclError? }: what this build / machine can use.
Napi::Value DistBackends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("gloo", comm::built_with_gloo());
#ifdef OTHINK_WITH_CUDA
  const std::string reason = comm::nccl_unavailable_reason();
  out.Set("nccl", reason.empty());
  if (!reason.empty()) out.Set("ncclError", reason);
#else
  out.Set("nccl", false);
  out.Set("ncclError", "this build has no CUDA (OTHINK_CUDA=1 pnpm build)");
#endif
  return out;
}
OTHINK_REGISTER_OP("distBackends", DistBackends);

}  // namespace
}  // namespace othink
