// Each bindings/*.cc file adds its entry points to the addon's exports.
#pragma once
#include <napi.h>

namespace othink {

void register_storage(Napi::Env env, Napi::Object exports);
// The tensor ops of @othink/core, under exports.ops (one function per bindings/ops_*.cc family).
void register_ops(Napi::Env env, Napi::Object exports);

}  // namespace othink
