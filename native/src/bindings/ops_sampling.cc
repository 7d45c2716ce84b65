// Token choice for generation: greedy or sampled (temperature, top-k, top-p) ids and their
// log-probs from logits [rows, vocab], on the device of the logits (the rule: cpu/sampling.h).
#include <cmath>
#include <cstdint>
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/sampling.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/sampling.cuh"
#endif

namespace othink {
namespace {

// A per-row option: one number for every row, or a buffer of one value per row. Values the host
// can read (numbers, CPU buffers) are checked here; on the GPU the kernel marks a row with an
// out-of-range value invalid (id -1, log-prob NaN).
template <typename T>
struct RowOption {
  T scalar;
  const T* rows = nullptr;
};

template <typename T, typename Valid>
RowOption<T> row_option(const Args& a, const char* name, const char* dtype, T fallback, int64_t rows, Valid valid,
                        const char* rule) {
  RowOption<T> o{fallback};
  if (!a.has(name)) return o;
  if (a.value(name).IsNumber()) {
    const double x = a.value(name).As<Napi::Number>().DoubleValue();
    if (!valid(x)) a.range_error(std::string(name) + " must be " + rule + " (got " + Args::format(x) + ")");
    o.scalar = static_cast<T>(x);
    return o;
  }
  const Args::Buffer b = a.buffer(name, dtype);
  if (static_cast<int64_t>(b.length) != rows)
    a.range_error(std::string(name) + " has " + std::to_string(b.length) + " elements; expected a number or one per row (" +
                  std::to_string(rows) + ")");
  o.rows = static_cast<const T*>(b.data);
  if (b.device == Device::Cpu)
    for (int64_t r = 0; r < rows; ++r)
      if (!valid(static_cast<double>(o.rows[r])))
        a.range_error(std::string(name) + "[" + std::to_string(r) + "] must be " + rule + " (got " +
                      Args::format(static_cast<double>(o.rows[r])) + ")");
  return o;
}

// An optional list of ids (CPU: each checked against the vocabulary).
const int32_t* id_list(const Args& a, const char* name, int64_t vocab, int64_t& count) {
  count = 0;
  if (!a.has(name)) return nullptr;
  const Args::Buffer b = a.buffer(name, "int32");
  count = static_cast<int64_t>(b.length);
  const int32_t* ids = static_cast<const int32_t*>(b.data);
  if (b.device == Device::Cpu)
    for (int64_t j = 0; j < count; ++j)
      if (ids[j] < 0 || ids[j] >= vocab)
        a.range_error(std::string(name) + "[" + std::to_string(j) + "] = " + std::to_string(ids[j]) +
                      " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  return ids;
}

// sampleTokens({ logits, vocabSize, outIds, outLogprobs, doSample = false, temperature = 1, topK = 0,
//                topP = 1, seeds, step, suppressIds?, done?, stopIds?, padId? })
//   logits float32 [rows, vocabSize]; outIds int32 [rows] (rows is its length); outLogprobs float32 [rows].
//   doSample false: greedy (argmax, first on ties), its log-prob at temperature 1.
//   temperature (> 0), topK (integer >= 0, 0: off), topP (in (0, 1], 1: off): a number for every
//   row, or a float32 / int32 / float32 buffer of one value per row.
//   seeds int32 [rows, 2] (low, high 32 bits of each row's seed) and step (integer >= 0, the draw
//   counter): required when sampling; a row's draw depends only on its seed and the step.
//   suppressIds int32 [n]: ids never chosen. done int32 [rows] (in / out): rows != 0 get padId and
//   log-prob 0; a row that chooses one of stopIds (int32 [n]) gets done = 1.
//   Every buffer on the device of the logits. On the CPU a row with nothing to choose (NaN or +inf
//   logits, every id -inf or suppressed) throws; on the GPU it gets id -1 and log-prob NaN.
Napi::Value SampleTokens(const Napi::CallbackInfo& info) {
  Args a(info, "ops.sampleTokens", Args::Devices::AnyDevice);
  const int64_t vocab = a.positive_int("vocabSize", 0, true);
  const Args::Buffer ids = a.buffer("outIds", "int32");
  const int64_t rows = static_cast<int64_t>(ids.length);
  sampling::Args s;
  s.rows = rows;
  s.vocab = vocab;
  s.out_ids = static_cast<int32_t*>(ids.data);
  s.logits = a.f32_buffer("logits", static_cast<size_t>(rows * vocab),
                          "[rows, vocabSize] = [" + std::to_string(rows) + ", " + std::to_string(vocab) +
                              "]: one row per element of outIds");
  s.out_logprobs = a.f32_buffer("outLogprobs", static_cast<size_t>(rows), "one per row: the length of outIds");
  s.do_sample = a.flag("doSample", false);

  const auto temperature = row_option<float>(
      a, "temperature", "float32", 1.f, rows, [](double x) { return x > 0 && std::isfinite(x); }, "> 0");
  const auto top_k = row_option<int32_t>(
      a, "topK", "int32", 0, rows, [](double x) { return x >= 0 && x <= 2147483647.0 && x == std::floor(x); },
      "an integer >= 0");
  const auto top_p = row_option<float>(
      a, "topP", "float32", 1.f, rows, [](double x) { return x > 0 && x <= 1; }, "in (0, 1]");
  s.temperature = temperature.scalar, s.temperatures = temperature.rows;
  s.top_k = top_k.scalar, s.top_ks = top_k.rows;
  s.top_p = top_p.scalar, s.top_ps = top_p.rows;
  if (s.do_sample) {
    if (!a.has("seeds")) a.type_error("seeds is required when sampling (an Int32Array or int32 tensor [rows, 2])");
    const Args::Buffer seeds = a.buffer("seeds", "int32");
    if (static_cast<int64_t>(seeds.length) != 2 * rows)
      a.range_error("seeds has " + std::to_string(seeds.length) + " elements; expected [rows, 2] = " +
                    std::to_string(2 * rows) + " (the low and high 32 bits of each row's seed)");
    s.seeds = static_cast<const int32_t*>(seeds.data);
    const double step = a.number("step", 0, true);
    if (step < 0 || step != std::floor(step) || step > 9007199254740991.0)
      a.range_error("step must be an integer in [0, 2^53) (got " + Args::format(step) + ")");
    s.step = static_cast<uint64_t>(step);
  }
  s.suppress = id_list(a, "suppressIds", vocab, s.suppress_count);
  if (a.has("done")) {
    const Args::Buffer done = a.buffer("done", "int32");
    if (static_cast<int64_t>(done.length) != rows)
      a.range_error("done has " + std::to_string(done.length) + " elements; expected one per row (" + std::to_string(rows) + ")");
    s.done = static_cast<int32_t*>(done.data);
    const double pad = a.number("padId", 0, true);
    if (pad < 0 || pad > 2147483647.0 || pad != std::floor(pad))
      a.range_error("padId must be an integer >= 0 (got " + Args::format(pad) + ")");
    s.pad = static_cast<int32_t>(pad);
    s.stop = id_list(a, "stopIds", vocab, s.stop_count);
  } else if (a.has("stopIds")) {
    a.type_error("stopIds needs done (the int32 [rows] finished flags it sets)");
  }
  if (rows == 0) return info.Env().Undefined();
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda) return run_cuda(a, [&] { cuda::sample_tokens(s, cuda::tensor_stream()); });
#endif
  cpu::sample_tokens(s);
  for (int64_t r = 0; r < rows; ++r)
    if (s.out_ids[r] < 0)
      a.range_error("row " + std::to_string(r) + " has no token to choose: its logits hold NaN or +inf, or every id is -inf or suppressed");
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("sampleTokens", SampleTokens);

}  // namespace
}  // namespace othink
