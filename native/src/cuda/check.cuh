// Error handling shared by the CUDA launchers and the N-API bridge: every CUDA runtime call goes
// through OTHINK_CUDA_CHECK, which turns a failure into a C++ exception naming the call and the
// place, so a bad launch never passes silently and the bridge can rethrow it as a JS Error.
// Host-only and free of device code: plain C++ (addon_cuda.cc) includes it too.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace othink::cuda {

class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

[[noreturn]] inline void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  throw CudaError(code, std::string("CUDA error ") + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) +
                            ") in " + call + " at " + file + ":" + std::to_string(line));
}

// A precondition of a launcher that the bridge checks first; reaching one is a caller bug.
[[noreturn]] inline void throw_bad_argument(const char* fn, const std::string& msg) {
  throw std::invalid_argument(std::string("othink::cuda::") + fn + ": " + msg);
}

// Bytes rounded up to the 256-byte alignment cudaMalloc gives, for carving workspaces.
constexpr size_t align256(size_t bytes) { return (bytes + 255) & ~size_t{255}; }

}  // namespace othink::cuda

#define OTHINK_CUDA_CHECK(call)                                                         \
  do {                                                                                  \
    const cudaError_t othink_cuda_err_ = (call);                                        \
    if (othink_cuda_err_ != cudaSuccess)                                                \
      ::othink::cuda::throw_cuda_error(othink_cuda_err_, #call, __FILE__, __LINE__);    \
  } while (0)

// After a kernel launch: reports a bad configuration (grid, block, shared memory) at once.
#define OTHINK_CUDA_CHECK_LAUNCH() OTHINK_CUDA_CHECK(cudaGetLastError())
