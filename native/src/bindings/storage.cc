#include "bindings/storage_wrap.h"

#include <cstring>
#include <string>

#ifdef OTHINK_WITH_CUDA
#include "cuda/check.cuh"
#endif

namespace othink {

namespace {
Napi::FunctionReference* constructor = nullptr;

Device parse_device(const Napi::Env& env, const Napi::Value& v) {
  if (v.IsUndefined()) return Device::Cpu;
  const std::string d = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (d == "cpu") return Device::Cpu;
  if (d == "cuda") return Device::Cuda;
  throw Napi::TypeError::New(env, "device must be 'cpu' or 'cuda'");
}
}  // namespace

Napi::Function StorageWrap::Define(Napi::Env env) {
  Napi::Function fn = DefineClass(env, "Storage",
                                  {
                                      InstanceMethod("dispose", &StorageWrap::Dispose),
                                      InstanceMethod("write", &StorageWrap::Write),
                                      InstanceMethod("read", &StorageWrap::Read),
                                      InstanceMethod("copyFrom", &StorageWrap::CopyFrom),
                                      InstanceAccessor("byteLength", &StorageWrap::ByteLength, nullptr),
                                      InstanceAccessor("device", &StorageWrap::DeviceName, nullptr),
                                      InstanceAccessor("disposed", &StorageWrap::Disposed, nullptr),
                                  });
  constructor = new Napi::FunctionReference(Napi::Persistent(fn));
  env.SetInstanceData(constructor);
  return fn;
}

// new Storage(byteLength, device = 'cpu', zero = true)
StorageWrap::StorageWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StorageWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "Storage: byteLength must be a number");
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 0) || bytes != static_cast<double>(static_cast<size_t>(bytes)))
    throw Napi::RangeError::New(env, "Storage: byteLength must be a non-negative integer");
  device_ = parse_device(env, info.Length() > 1 ? info[1] : env.Undefined());
  const bool zero = info.Length() > 2 ? info[2].ToBoolean().Value() : true;
  try {
    data_ = storage_alloc(static_cast<size_t>(bytes), device_, zero);
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "Storage: out of memory allocating " + std::to_string(static_cast<size_t>(bytes)) + " bytes");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("Storage: ") + e.what());
  }
  bytes_ = static_cast<size_t>(bytes);
}

StorageWrap::~StorageWrap() { release(); }

void StorageWrap::release() {
  if (data_) storage_free(data_, bytes_, device_);
  data_ = nullptr;
}

StorageWrap* StorageWrap::From(const Napi::Value& v) {
  if (!v.IsObject() || constructor == nullptr) return nullptr;
  if (!v.As<Napi::Object>().InstanceOf(constructor->Value())) return nullptr;
  return Unwrap(v.As<Napi::Object>());
}

Napi::Object StorageWrap::Create(Napi::Env env, size_t bytes, Device device, bool zero) {
  return constructor->New({Napi::Number::New(env, static_cast<double>(bytes)),
                           Napi::String::New(env, device == Device::Cpu ? "cpu" : "cuda"), Napi::Boolean::New(env, zero)});
}

Napi::Value StorageWrap::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

std::pair<uint8_t*, size_t> StorageWrap::checked_range(const Napi::CallbackInfo& info, const char* method) {
  Napi::Env env = info.Env();
  if (disposed()) throw Napi::Error::New(env, std::string("Storage.") + method + ": the storage was disposed");
  if (info.Length() < 1 || !info[0].IsTypedArray())
    throw Napi::TypeError::New(env, std::string("Storage.") + method + ": expected a typed array");
  Napi::TypedArray view = info[0].As<Napi::TypedArray>();
  double offset = 0;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, std::string("Storage.") + method + ": byteOffset must be a number");
    offset = info[1].As<Napi::Number>().DoubleValue();
  }
  const size_t n = view.ByteLength();
  if (!(offset >= 0) || offset != static_cast<double>(static_cast<size_t>(offset)) || static_cast<size_t>(offset) + n > bytes_)
    throw Napi::RangeError::New(env, std::string("Storage.") + method + ": " + std::to_string(n) + " bytes at byteOffset " +
                                         std::to_string(static_cast<int64_t>(offset)) + " do not fit in " + std::to_string(bytes_) + " bytes");
  byte_offset_ = static_cast<size_t>(offset);
  uint8_t* bytes = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  return {bytes, n};
}

#ifdef OTHINK_WITH_CUDA
namespace {
// A copy that touches device memory. cudaMemcpy runs on the legacy default stream, behind the
// queued ops (cuda/stream.cuh): host-to-device returns once the host bytes are staged (the typed
// array may be reused at once), device-to-host once the bytes have arrived. cudaMemcpyDefault
// reads the direction from the pointers (unified addressing).
void cuda_copy(const Napi::Env& env, const char* method, void* dst, const void* src, size_t n) {
  if (n == 0) return;
  const cudaError_t err = cudaMemcpy(dst, src, n, cudaMemcpyDefault);
  if (err != cudaSuccess)
    throw Napi::Error::New(env, std::string("Storage.") + method + ": CUDA error " + cudaGetErrorName(err) + " (" +
                                    cudaGetErrorString(err) + ") in cudaMemcpy");
}
}  // namespace
#endif

// write(view, byteOffset = 0): copy a typed array into the storage.
Napi::Value StorageWrap::Write(const Napi::CallbackInfo& info) {
  auto [src, n] = checked_range(info, "write");
#ifdef OTHINK_WITH_CUDA
  if (device_ == Device::Cuda) {
    cuda_copy(info.Env(), "write", static_cast<uint8_t*>(data_) + byte_offset_, src, n);
    return info.Env().Undefined();
  }
#endif
  std::memcpy(static_cast<uint8_t*>(data_) + byte_offset_, src, n);
  return info.Env().Undefined();
}

// read(view, byteOffset = 0): copy bytes of the storage out into a typed array.
Napi::Value StorageWrap::Read(const Napi::CallbackInfo& info) {
  auto [dst, n] = checked_range(info, "read");
#ifdef OTHINK_WITH_CUDA
  if (device_ == Device::Cuda) {
    cuda_copy(info.Env(), "read", dst, static_cast<uint8_t*>(data_) + byte_offset_, n);
    return info.Env().Undefined();
  }
#endif
  std::memcpy(dst, static_cast<uint8_t*>(data_) + byte_offset_, n);
  return info.Env().Undefined();
}

// copyFrom(src: Storage, srcByteOffset, dstByteOffset, byteLength): bytes from another storage on
// any device (Tensor.to). The ranges must not overlap when src is this storage.
Napi::Value StorageWrap::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed()) throw Napi::Error::New(env, "Storage.copyFrom: the storage was disposed");
  StorageWrap* src = info.Length() > 0 ? From(info[0]) : nullptr;
  if (!src) throw Napi::TypeError::New(env, "Storage.copyFrom: expected a Storage to copy from");
  if (src->disposed()) throw Napi::Error::New(env, "Storage.copyFrom: the source storage was disposed");
  size_t arg[3];
  const char* names[3] = {"srcByteOffset", "dstByteOffset", "byteLength"};
  for (int i = 0; i < 3; ++i) {
    const Napi::Value v = static_cast<size_t>(i + 1) < info.Length() ? info[i + 1] : env.Undefined();
    const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x != static_cast<double>(static_cast<size_t>(x)))
      throw Napi::TypeError::New(env, std::string("Storage.copyFrom: ") + names[i] + " must be a non-negative integer");
    arg[i] = static_cast<size_t>(x);
  }
  const size_t src_off = arg[0], dst_off = arg[1], n = arg[2];
  if (src_off > src->bytes_ || n > src->bytes_ - src_off || dst_off > bytes_ || n > bytes_ - dst_off)
    throw Napi::RangeError::New(env, "Storage.copyFrom: " + std::to_string(n) + " bytes from byte " + std::to_string(src_off) +
                                         " of " + std::to_string(src->bytes_) + " to byte " + std::to_string(dst_off) + " of " +
                                         std::to_string(bytes_) + " do not fit");
  uint8_t* dst = static_cast<uint8_t*>(data_) + dst_off;
  const uint8_t* from = static_cast<const uint8_t*>(src->data_) + src_off;
  if (src == this && n > 0 && dst < from + n && from < dst + n)
    throw Napi::RangeError::New(env, "Storage.copyFrom: the source and destination ranges overlap");
#ifdef OTHINK_WITH_CUDA
  if (device_ == Device::Cuda || src->device_ == Device::Cuda) {
    cuda_copy(env, "copyFrom", dst, from, n);
    return env.Undefined();
  }
#endif
  if (n > 0) std::memcpy(dst, from, n);
  return env.Undefined();
}

Napi::Value StorageWrap::ByteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(bytes_));
}

Napi::Value StorageWrap::DeviceName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_ == Device::Cpu ? "cpu" : "cuda");
}

Napi::Value StorageWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed()); }

namespace {
Napi::Value MemoryStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MemoryStats s = memory_stats(parse_device(env, info.Length() > 0 ? info[0] : env.Undefined()));
  Napi::Object out = Napi::Object::New(env);
  out.Set("currentBytes", static_cast<double>(s.current_bytes));
  out.Set("peakBytes", static_cast<double>(s.peak_bytes));
  out.Set("allocations", static_cast<double>(s.allocations));
  out.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  out.Set("reservedBytes", static_cast<double>(s.reserved_bytes));
  return out;
}

// emptyCache(device = 'cuda'): gives cached free device blocks back to the driver.
Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Device device = info.Length() > 0 && !info[0].IsUndefined() ? parse_device(env, info[0]) : Device::Cuda;
  try {
    empty_cache(device);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("emptyCache: ") + e.what());
  }
  return env.Undefined();
}

Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  reset_peak_memory(parse_device(env, info.Length() > 0 ? info[0] : env.Undefined()));
  return env.Undefined();
}
}  // namespace

void register_storage(Napi::Env env, Napi::Object exports) {
  exports.Set("Storage", StorageWrap::Define(env));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStatsJs));
  exports.Set("resetPeakMemory", Napi::Function::New(env, ResetPeakMemory));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
}

}  // namespace othink
