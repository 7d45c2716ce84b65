// Tensor ops register themselves here (one static OpRegistration per function), so each
// bindings/ops_*.cc file is self-contained; register_ops() puts them all on exports.ops.
#pragma once
#include <napi.h>

namespace othink {

using OpFunction = Napi::Value (*)(const Napi::CallbackInfo&);

struct OpRegistration {
  OpRegistration(const char* name, OpFunction fn);
};

#define OTHINK_CONCAT_INNER(a, b) a##b
#define OTHINK_CONCAT(a, b) OTHINK_CONCAT_INNER(a, b)
// OTHINK_REGISTER_OP("rmsNorm", RmsNorm);  -> native.ops.rmsNorm
#define OTHINK_REGISTER_OP(name, fn) static ::othink::OpRegistration OTHINK_CONCAT(op_registration_, __LINE__)(name, fn)

}  // namespace othink
