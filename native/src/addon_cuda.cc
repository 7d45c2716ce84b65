// The CUDA part of the Node-API surface that has no CPU counterpart: `cuda.deviceInfo()`. The RL
// kernels and tensor ops have one binding each for both devices (addon.cc, bindings/): they run
// where their tensors are, so nothing here copies data between host and device.
#include "addon_cuda.h"

#include <cuda_runtime_api.h>

#include <string>

#include "cuda/gemm.cuh"

namespace othink {
namespace {

// deviceInfo() -> { available, deviceCount, name?, computeCapability?, totalMemory?, multiprocessors?,
//                   runtimeVersion, driverVersion, cublas, error? }. Never throws: it is how callers
// (and the tests) find out whether the kernels can run here at all.
Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  int runtime = 0, driver = 0, count = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  const cudaError_t err = cudaGetDeviceCount(&count);
  out.Set("runtimeVersion", runtime);
  out.Set("driverVersion", driver);
  out.Set("cublas", cuda::cublas_available());
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it: the next CUDA call must not report it again
    out.Set("available", false);
    out.Set("deviceCount", 0);
    out.Set("error", std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err));
    return out;
  }
  out.Set("available", count > 0);
  out.Set("deviceCount", count);
  int device = 0;
  cudaDeviceProp prop{};
  if (count > 0 && cudaGetDevice(&device) == cudaSuccess && cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    out.Set("device", device);
    out.Set("name", std::string(prop.name));
    out.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
    out.Set("totalMemory", static_cast<double>(prop.totalGlobalMem));
    out.Set("multiprocessors", prop.multiProcessorCount);
  }
  cudaGetLastError();
  return out;
}

}  // namespace

Napi::Object cuda_exports(Napi::Env env) {
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("deviceInfo", Napi::Function::New(env, DeviceInfo, "deviceInfo"));
  return cuda;
}

}  // namespace othink
