// Group advantages on the GPU (twin of cpu/advantage.cc): one block per group, two-pass float64
// mean and unbiased std over the finite rewards by block reductions; for the batch scale, one
// block first computes the batch std the same way.
#include <algorithm>
#include <climits>
#include <cmath>

#include "cuda/advantage.cuh"
#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"

namespace othink::cuda {
namespace {

struct Moments {
  double mean, std;
};

// Mean and unbiased std of the finite values of x[0..len), by the whole block (every thread must
// call it; every thread gets the result). Fewer than two finite values: std 0; none: mean 0.
__device__ Moments block_moments(const float* x, int64_t len) {
  double sum = 0.0;
  long long count = 0;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
    const float v = x[i];
    if (isfinite(v)) sum += v, ++count;
  }
  sum = dev::block_sum(sum);
  count = dev::block_sum(count);
  Moments m{0.0, 0.0};
  if (count == 0) return m;  // count is the same in every thread: the returns are uniform
  m.mean = sum / static_cast<double>(count);
  if (count < 2) return m;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
    const float v = x[i];
    if (isfinite(v)) ss += (v - m.mean) * (v - m.mean);
  }
  ss = dev::block_sum(ss);
  m.std = sqrt(ss / static_cast<double>(count - 1));
  return m;
}

__global__ void batch_std_kernel(const float* __restrict__ rewards, int64_t n, double* __restrict__ batch_std) {
  const Moments m = block_moments(rewards, n);
  if (threadIdx.x == 0) *batch_std = m.std;
}

__global__ void group_kernel(const float* __restrict__ rewards, int64_t groups, int64_t group_size,
                             AdvantageScale scale, float eps, const double* __restrict__ batch_std,
                             float* __restrict__ advantages, float* __restrict__ means, float* __restrict__ stds) {
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const float* r = rewards + g * group_size;
    const Moments m = block_moments(r, group_size);
    if (threadIdx.x == 0) {
      means[g] = static_cast<float>(m.mean);
      stds[g] = static_cast<float>(m.std);
    }
    const double denom = scale == AdvantageScale::Group   ? m.std + eps
                         : scale == AdvantageScale::Batch ? *batch_std + eps
                                                          : 1.0;
    for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
      const float ri = r[i];
      advantages[g * group_size + i] = isfinite(ri) ? static_cast<float>((ri - m.mean) / denom) : 0.f;
    }
  }
}

// *first = the smallest index of a non-finite value (left at ULLONG_MAX when none): one atomic per warp.
__global__ void __launch_bounds__(256)
    first_non_finite_kernel(const float* __restrict__ x, int64_t n, unsigned long long* __restrict__ first) {
  unsigned long long mine = ULLONG_MAX;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n && mine == ULLONG_MAX;
       i += stride)
    if (!isfinite(x[i])) mine = static_cast<unsigned long long>(i);  // i grows: the thread's smallest
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const unsigned long long other = __shfl_xor_sync(dev::kFullMask, mine, offset);
    mine = other < mine ? other : mine;
  }
  if ((threadIdx.x & 31) == 0 && mine != ULLONG_MAX) atomicMin(first, mine);
}

}  // namespace

int64_t first_non_finite(const float* x, int64_t n, float* value, cudaStream_t stream) {
  if (n <= 0) return -1;
  if (!x || !value) throw_bad_argument("first_non_finite", "x must be a device pointer and value a host one");
  DeviceScratch scratch(sizeof(unsigned long long));
  unsigned long long* first = scratch.as<unsigned long long>();
  OTHINK_CUDA_CHECK(cudaMemsetAsync(first, 0xff, sizeof(unsigned long long), stream));  // ULLONG_MAX
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 1024);
  first_non_finite_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, n, first);
  OTHINK_CUDA_CHECK_LAUNCH();
  unsigned long long host = 0;
  OTHINK_CUDA_CHECK(cudaMemcpyAsync(&host, first, sizeof(host), cudaMemcpyDeviceToHost, stream));
  OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host == ULLONG_MAX) return -1;
  const int64_t i = static_cast<int64_t>(host);
  OTHINK_CUDA_CHECK(cudaMemcpyAsync(value, x + i, sizeof(float), cudaMemcpyDeviceToHost, stream));
  OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  return i;
}

size_t group_advantages_workspace_bytes() { return align256(sizeof(double)); }

void group_advantages(const float* rewards, int64_t n, int64_t group_size, AdvantageScale scale,
                      bool /*skip_non_finite: non-finite rewards are always left out, as on the CPU*/,
                      float eps, float* advantages, float* group_means, float* group_stds, void* workspace,
                      size_t workspace_bytes, cudaStream_t stream) {
  if (n < 0 || group_size < 1 || n % group_size != 0)
    throw_bad_argument("group_advantages", "n must be a non-negative multiple of group_size >= 1");
  if (n == 0) return;
  double* batch_std = nullptr;
  if (scale == AdvantageScale::Batch) {
    if (!workspace || workspace_bytes < group_advantages_workspace_bytes())
      throw_bad_argument("group_advantages", "the batch scale needs group_advantages_workspace_bytes() of workspace");
    batch_std = static_cast<double*>(workspace);
    batch_std_kernel<<<1, 1024, 0, stream>>>(rewards, n, batch_std);
    OTHINK_CUDA_CHECK_LAUNCH();
  }
  const int64_t groups = n / group_size;
  // A warp per 32 rewards of a group, up to 256 threads (a multiple of 32, as block_sum needs).
  const int threads = static_cast<int>(std::min<int64_t>((group_size + 31) / 32 * 32, 256));
  group_kernel<<<dev::grid_for(groups), threads, 0, stream>>>(rewards, groups, group_size, scale, eps, batch_std,
                                                              advantages, group_means, group_stds);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace othink::cuda
