// Choosing the next token of each row of logits [rows, vocab]: greedy, or sampling with the warpers
// of Hugging Face transformers (temperature, then top-k, then top-p), with the chosen token's
// log-prob and the stop-token bookkeeping of a decoding loop.
//
// The rule, which the CPU kernel (cpu/sampling.cc) and the CUDA kernel (cuda/sampling.cu) both
// implement. The arithmetic that decides a draw is defined once, below, as __host__ __device__
// functions both include, so the two cannot drift apart. Per row r:
//   0. done[r] != 0 (a finished row): id = pad, log-prob 0, nothing else.
//   1. s_i = x_i / T (float32, IEEE division; greedy: T = 1), and s_i = -inf for suppressed ids.
//      A row with a NaN or +inf logit, no finite s_i, or (per-row options on the GPU, which the
//      binding cannot read) an option out of range, is invalid: id -1, log-prob NaN.
//   2. m = max s_i; the log-prob of token i is log softmax(s)_i = (s_i - m) - log sum_j exp(s_j - m)
//      (double sums): the distribution before top-k / top-p, over every id not suppressed.
//   3. Greedy: the first index of m.
//   4. Sampling: integer weights w_i = floor(exp(s_i - m) * 2^F) (exp in double, F =
//      weight_bits(vocab), at most 52): every sum below is then exact, in any order, so both
//      kernels make the same decisions from the same w (exp differs between libm and CUDA by an
//      ulp of a double at most: a w differs by a unit of 2^-F now and then, and a decision moves
//      only if the draw lands on that unit). Tokens below 2^-F of the best one get weight 0:
//      their total is below vocab * 2^-F (2^-27 for Qwen2-VL's 151936) of the mass, under the
//      rounding of a float32 cumulative sum.
//      - top-k (0 < k < vocab): K = { i : s_i >= the k-th largest s } (HF's TopKLogitsWarper: every
//        tie of the k-th value stays);
//      - top-p (p < 1): in the order (s descending, index ascending), token j of K stays iff the
//        weight of K before it is < target = clamp(ceil(p * W_K), 1, W_K), W_K = sum_K w (HF's
//        TopPLogitsWarper: it removes a token when the ascending cumulative probability up to it is
//        <= 1 - p, i.e. keeps it iff the mass above it is < p; the best token always stays). HF
//        orders ties as torch.sort happens to; here the lower index comes first;
//      - the draw: U = 64 bits of Philox4x32-10 (key = the row's 64-bit seed, counter = (step, 0));
//        r = floor(U * W_P / 2^64) with W_P = sum of w over the kept set P; the token is the first
//        i of P in index order whose inclusive cumulative weight exceeds r. So a row's token
//        depends only on its logits, options, seed and step: not on the other rows or the batch.
//   5. done given: a chosen id in the stop set sets done[r] = 1.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define OTHINK_SAMPLING_HD __host__ __device__ __forceinline__
#else
#define OTHINK_SAMPLING_HD inline
#endif

namespace othink::sampling {

// What one call samples from and writes. Pointers are host or device memory, all on one device.
// A per-row array (temperature / top_k / top_p) overrides the scalar beside it when not null.
struct Args {
  const float* logits = nullptr;  // [rows, vocab]
  int64_t rows = 0, vocab = 0;
  bool do_sample = false;  // false: greedy (the options and seeds are not read)
  float temperature = 1.f;
  const float* temperatures = nullptr;  // [rows] or null
  int32_t top_k = 0;                    // 0: off
  const int32_t* top_ks = nullptr;      // [rows] or null
  float top_p = 1.f;                    // 1: off
  const float* top_ps = nullptr;        // [rows] or null
  const int32_t* seeds = nullptr;       // [rows, 2]: low and high 32 bits of each row's seed
  uint64_t step = 0;                    // the draw counter (the decoding step)
  const int32_t* suppress = nullptr;    // ids never chosen; out-of-range ids are ignored
  int64_t suppress_count = 0;
  int32_t* done = nullptr;            // [rows] in / out, or null (no stop bookkeeping)
  const int32_t* stop = nullptr;      // ids that finish a row (needs done)
  int64_t stop_count = 0;
  int32_t pad = 0;                    // id of a finished row
  int32_t* out_ids = nullptr;         // [rows]
  float* out_logprobs = nullptr;      // [rows]
};

// ---- the arithmetic of a draw, shared by both kernels.

// An order-preserving map of floats (no NaN) to unsigned integers; -0 and +0 map to one key, as
// they compare equal.
OTHINK_SAMPLING_HD uint32_t order_key(float f) {
  uint32_t u = 0;
  if (f != 0.f) {
#if defined(__CUDA_ARCH__)
    u = __float_as_uint(f);
#else
    __builtin_memcpy(&u, &f, sizeof u);
#endif
  }
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Fraction bits of the weights: vocab weights of at most 2^F sum below 2^63.
OTHINK_SAMPLING_HD int weight_bits(int64_t vocab) {
  int width = 0;
  for (uint64_t v = static_cast<uint64_t>(vocab); v != 0; v >>= 1) ++width;
  const int bits = 63 - width;
  return bits < 52 ? bits : 52;
}

// w = floor(exp(s - m) * 2^bits) for s <= m (0 for s = -inf). The subtraction of two floats is
// exact in double, the product by a power of two too; only exp rounds.
OTHINK_SAMPLING_HD uint64_t weight(float s, float m, int bits) {
  if (s == -INFINITY) return 0;
  const double e = exp(static_cast<double>(s) - static_cast<double>(m));
  return static_cast<uint64_t>(e * static_cast<double>(uint64_t{1} << bits));
}

// The top-p target: clamp(ceil(p * total), 1, total), one IEEE product on both kernels.
OTHINK_SAMPLING_HD uint64_t top_p_target(float p, uint64_t total) {
  const double t = ceil(static_cast<double>(p) * static_cast<double>(total));
  const uint64_t target = t >= static_cast<double>(total) ? total : static_cast<uint64_t>(t);
  return target < 1 ? 1 : target;
}

// How many ties of the threshold value (each of weight w > 0) top-p keeps, when `above` (< target)
// is the weight before them: the t-th tie stays iff above + t * w < target.
OTHINK_SAMPLING_HD uint64_t ties_kept(uint64_t target, uint64_t above, uint64_t w) {
  return (target - above + w - 1) / w;
}

// The float whose order_key is `key` (the inverse; +0 for the key of both zeros).
OTHINK_SAMPLING_HD float key_value(uint32_t key) {
  const uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// One level of the radix selection both kernels run (four levels of 8 bits, most significant
// first): among the elements whose key starts with the digits chosen so far, hist[d] holds the
// weight (count, or w) of those whose next digit is d, and `above` the weight of every element
// ranked above the group. Picks the largest digit d with above + sum_{d' >= d} hist[d'] >= target
// and adds the weight of the digits above d to `above`. Invariant: above < target <= above + the
// group's weight, so some digit qualifies, and at the end `above` is the weight strictly above the
// selected key.
OTHINK_SAMPLING_HD uint32_t pick_digit(const uint64_t* hist, uint64_t target, uint64_t& above) {
  uint32_t d = 255;
  for (; d > 0; --d) {
    if (above + hist[d] >= target) break;
    above += hist[d];
  }
  return d;
}

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the
// generator of cuRAND and PyTorch's CUDA RNG): a counter-based generator, so a draw is a pure
// function of (key, counter) on any device. Checked against Random123's known-answer vectors.
OTHINK_SAMPLING_HD void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0, p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// The 64 random bits of a row's draw at `step`: the first two words of Philox4x32-10 with the
// seed as key and (step low, step high, 0, 0) as counter.
OTHINK_SAMPLING_HD uint64_t draw_bits(uint32_t seed_lo, uint32_t seed_hi, uint64_t step) {
  const uint32_t ctr[4] = {static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), 0u, 0u};
  const uint32_t key[2] = {seed_lo, seed_hi};
  uint32_t out[4];
  philox4x32_10(ctr, key, out);
  return (static_cast<uint64_t>(out[1]) << 32) | out[0];
}

// floor(bits * total / 2^64): a uniform point of [0, total).
OTHINK_SAMPLING_HD uint64_t scale_draw(uint64_t bits, uint64_t total) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(bits, total);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * total) >> 64);
#endif
}

}  // namespace othink::sampling

namespace othink::cpu {

// The rule above on host memory, rows in parallel (each row by one thread: results do not depend
// on the thread count). The binding has checked the options; a row that is still invalid (its
// logits) gets id -1 and log-prob NaN.
void sample_tokens(const sampling::Args& args);

}  // namespace othink::cpu
