// Random initialisation of tensors.
#include "args.h"
#include "bindings/ops_registry.h"
#include "cpu/random.h"

namespace othink {
namespace {

// fillNormal({ out, mean = 0, std = 1, seed }): reproducible normal samples (independent of threads).
Napi::Value FillNormal(const Napi::CallbackInfo& info) {
  Args a(info, "ops.fillNormal");
  Args::Buffer out = a.buffer("out", "float32");
  if (out.device != Device::Cpu) a.type_error("out must be a CPU tensor (initialise on the CPU, then move it)");
  const double std = a.number("std", 1.0);
  if (std < 0) a.range_error("std must be >= 0");
  const double seed = a.number("seed", 0, true);
  if (seed < 0 || seed != static_cast<double>(static_cast<uint64_t>(seed))) a.range_error("seed must be a non-negative integer");
  cpu::fill_normal(static_cast<float*>(out.data), static_cast<int64_t>(out.length), static_cast<float>(a.number("mean", 0)),
                   static_cast<float>(std), static_cast<uint64_t>(seed));
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("fillNormal", FillNormal);

}  // namespace
}  // namespace othink
