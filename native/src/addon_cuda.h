// The CUDA-only part of the Node-API surface: `require(addon).cuda` (addon.cc sets it when built
// with OTHINK_WITH_CUDA), holding deviceInfo(). The kernels themselves take CUDA tensors through
// the same bindings as CPU memory.
#pragma once
#include <napi.h>

namespace othink {

Napi::Object cuda_exports(Napi::Env env);

}  // namespace othink
