// What a binding needs to run its CUDA launcher beside the CPU kernel: read the buffers with
// Args(info, fn, Args::Devices::AnyDevice) (which checks they share one device), then
//
//   #ifdef OTHINK_WITH_CUDA
//     if (a.device() == Device::Cuda) return run_cuda(a, [&] { cuda::op(..., cuda::tensor_stream()); });
//   #endif
//     cpu::op(...);
//
// Launchers report failures (a bad launch, cuBLAS, the allocator out of memory) as C++ exceptions;
// run_cuda turns them into a JS Error naming the op, since node-addon-api only converts Napi::Error
// and anything else escaping a callback would terminate the process.
#pragma once
#ifdef OTHINK_WITH_CUDA
#include <napi.h>

#include <exception>

#include "args.h"
#include "cuda/stream.cuh"

namespace othink {

template <typename Launch>
Napi::Value run_cuda(const Args& a, Launch&& launch) {
  try {
    launch();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    a.error(e.what());
  }
  return a.env().Undefined();
}

}  // namespace othink
#endif
