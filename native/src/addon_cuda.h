// The CUDA half of the Node-API surface: `require(addon).cuda` (addon.cc sets it when built with
// OTHINK_WITH_CUDA). Same function names, options and checks as the CPU exports; arrays are host
// typed arrays copied to the device and back, so tests can compare each kernel with its CPU twin.
#pragma once
#include <napi.h>

namespace othink {

Napi::Object cuda_exports(Napi::Env env);

}  // namespace othink
