// Argument reading for the N-API entry points: every kernel takes one options object, and every
// problem with it becomes a JS Error that names the function and the argument.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "bindings/storage_wrap.h"

namespace othink {

class Args {
 public:
  // Which devices the tensors of a binding may live on. CpuOnly (the default) rejects a CUDA tensor
  // with a clear error instead of handing a device pointer to a CPU kernel; a binding that
  // dispatches on device() (CPU kernel or CUDA launcher) passes AnyDevice.
  enum class Devices { CpuOnly, AnyDevice };

  Args(const Napi::CallbackInfo& info, const char* fn, Devices devices = Devices::CpuOnly)
      : env_(info.Env()), fn_(fn), devices_(devices) {
    if (info.Length() != 1 || !info[0].IsObject() || info[0].IsArray())
      throw Napi::TypeError::New(env_, std::string(fn) + ": expected one options object");
    obj_ = info[0].As<Napi::Object>();
  }

  Napi::Env env() const { return env_; }

  // The device of every buffer read so far (buffer() checks they agree); Cpu when none was read.
  Device device() const { return device_; }

  // A plain Error naming the function (a CUDA / cuBLAS / allocator failure inside a launcher).
  [[noreturn]] void error(const std::string& msg) const { throw Napi::Error::New(env_, std::string(fn_) + ": " + msg); }

  [[noreturn]] void type_error(const std::string& msg) const {
    throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg);
  }
  [[noreturn]] void range_error(const std::string& msg) const {
    throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg);
  }

  Napi::Value value(const char* name) const { return obj_.Get(name); }

  bool has(const char* name) const {
    if (!obj_.Has(name)) return false;
    const Napi::Value v = obj_.Get(name);
    return !v.IsUndefined() && !v.IsNull();
  }

  template <typename T, napi_typedarray_type Kind>
  Napi::TypedArrayOf<T> typed(const char* name, const char* kind_name, bool required = true) const {
    if (!has(name)) {
      if (required) type_error(std::string(name) + " is required (a " + kind_name + ")");
      return Napi::TypedArrayOf<T>();
    }
    const Napi::Value v = obj_.Get(name);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Kind)
      type_error(std::string(name) + " must be a " + kind_name + " (got " + describe(v) + ")");
    return v.As<Napi::TypedArrayOf<T>>();
  }

  // A tensor's memory: a typed array of the dtype, or a tensor-like object { storage, offset, size,
  // dtype } from @othink/core (offset and size in elements). Bounds are checked against the storage.
  struct Buffer {
    void* data = nullptr;
    size_t length = 0;  // elements
    Device device = Device::Cpu;
    explicit operator bool() const { return data != nullptr || length > 0; }
  };

  Buffer buffer(const char* name, const char* dtype, bool required = true) const {
    if (!has(name)) {
      if (required) type_error(std::string(name) + " is required (a " + (std::string(dtype) == "int32" ? "Int32Array" : std::string(dtype) == "float32" ? "Float32Array" : "Uint16Array") + " or a " + dtype + " tensor)");
      return {};
    }
    const Napi::Value v = obj_.Get(name);
    const std::string want(dtype);
    const size_t elem = want == "bfloat16" ? 2 : 4;
    const std::string expected = std::string(want == "float32" ? "Float32Array" : want == "int32" ? "Int32Array" : "Uint16Array") +
                                 " or a " + dtype + " tensor";
    if (v.IsTypedArray()) {
      const napi_typedarray_type kind = v.As<Napi::TypedArray>().TypedArrayType();
      const bool ok = (want == "float32" && kind == napi_float32_array) || (want == "int32" && kind == napi_int32_array) ||
                      (want == "bfloat16" && kind == napi_uint16_array);
      if (!ok) type_error(std::string(name) + " must be a " + expected + " (got " + describe(v) + ")");
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      check_device(name, Device::Cpu);
      return {static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ElementLength(), Device::Cpu};
    }
    if (!v.IsObject()) type_error(std::string(name) + " must be a " + expected + " (got " + describe(v) + ")");
    const Napi::Object t = v.As<Napi::Object>();
    StorageWrap* storage = StorageWrap::From(t.Get("storage"));
    if (!storage) type_error(std::string(name) + " must be a " + expected + " (got " + describe(v) + ")");
    const Napi::Value tdtype = t.Get("dtype");
    if (!tdtype.IsString() || tdtype.As<Napi::String>().Utf8Value() != want)
      type_error(std::string(name) + " must have dtype " + dtype + " (got " + (tdtype.IsString() ? tdtype.As<Napi::String>().Utf8Value() : "?") + ")");
    if (storage->disposed()) type_error(std::string(name) + ": the tensor's storage was disposed");
    const double offset = t.Get("offset").ToNumber().DoubleValue(), size = t.Get("size").ToNumber().DoubleValue();
    if (!(offset >= 0 && size >= 0) || (offset + size) * elem > static_cast<double>(storage->bytes()))
      range_error(std::string(name) + ": offset " + format(offset) + " + size " + format(size) + " elements exceed its storage of " +
                  std::to_string(storage->bytes()) + " bytes");
    const Buffer b{static_cast<uint8_t*>(storage->data()) + static_cast<size_t>(offset) * elem, static_cast<size_t>(size), storage->device()};
    check_device(name, b.device);
    return b;
  }

  // Like buffer(), for a float32 one that must hold exactly `expected` elements.
  float* f32_buffer(const char* name, size_t expected, const std::string& what, bool required = true) const {
    Buffer b = buffer(name, "float32", required);
    if (!required && !b) return nullptr;
    if (b.length != expected)
      range_error(std::string(name) + " has " + std::to_string(b.length) + " elements; expected " + std::to_string(expected) + " (" + what + ")");
    return static_cast<float*>(b.data);
  }

  Napi::Float32Array f32(const char* name, bool required = true) const {
    return typed<float, napi_float32_array>(name, "Float32Array", required);
  }
  Napi::Int32Array i32(const char* name, bool required = true) const {
    return typed<int32_t, napi_int32_array>(name, "Int32Array", required);
  }

  double number(const char* name, double fallback, bool required = false) const {
    if (!has(name)) {
      if (required) type_error(std::string(name) + " is required (a number)");
      return fallback;
    }
    const Napi::Value v = obj_.Get(name);
    if (!v.IsNumber()) type_error(std::string(name) + " must be a number (got " + describe(v) + ")");
    const double x = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(x)) range_error(std::string(name) + " must be finite (got " + std::to_string(x) + ")");
    return x;
  }

  // A positive integer that fits the kernels' int64 / int32 index math.
  int64_t positive_int(const char* name, int64_t fallback, bool required = false) const {
    const double x = number(name, static_cast<double>(fallback), required);
    if (x != std::floor(x) || x < 1 || x > 2147483647.0)
      range_error(std::string(name) + " must be a positive integer (got " + format(x) + ")");
    return static_cast<int64_t>(x);
  }

  bool flag(const char* name, bool fallback) const {
    if (!has(name)) return fallback;
    const Napi::Value v = obj_.Get(name);
    if (!v.IsBoolean()) type_error(std::string(name) + " must be a boolean (got " + describe(v) + ")");
    return v.As<Napi::Boolean>().Value();
  }

  std::string choice(const char* name, const char* fallback, std::initializer_list<const char*> options) const {
    if (!has(name)) return fallback;
    const Napi::Value v = obj_.Get(name);
    std::string list;
    for (const char* o : options) list += std::string(list.empty() ? "" : ", ") + "'" + o + "'";
    if (!v.IsString()) type_error(std::string(name) + " must be one of " + list + " (got " + describe(v) + ")");
    const std::string s = v.As<Napi::String>().Utf8Value();
    for (const char* o : options)
      if (s == o) return s;
    range_error(std::string(name) + " must be one of " + list + " (got '" + s + "')");
  }

  // Checks that an array has exactly `expected` elements; `what` explains where that number comes from.
  template <typename A>
  void expect_length(const A& a, const char* name, size_t expected, const std::string& what) const {
    if (a.ElementLength() != expected)
      range_error(std::string(name) + " has " + std::to_string(a.ElementLength()) + " elements; expected " +
                  std::to_string(expected) + " (" + what + ")");
  }

  static std::string format(double x) {
    if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));
    return std::to_string(x);
  }

 private:
  static const char* device_name(Device d) { return d == Device::Cpu ? "cpu" : "cuda"; }

  // Every buffer of one call on one device: a CPU kernel must never get a device pointer, nor a
  // CUDA launcher host memory. Typed arrays are host (cpu) memory.
  void check_device(const char* name, Device d) const {
    if (d == Device::Cuda && devices_ == Devices::CpuOnly)
      type_error(std::string(name) + " is on cuda, but this op has no CUDA kernel (it reads CPU tensors only)");
    if (first_buffer_.empty()) {
      first_buffer_ = name;
      device_ = d;
    } else if (d != device_) {
      throw Napi::Error::New(env_, std::string(fn_) + ": " + first_buffer_ + " is on " + device_name(device_) + " but " + name +
                                       " is on " + device_name(d));
    }
  }

  static std::string describe(const Napi::Value& v) {
    if (v.IsTypedArray()) {
      switch (v.As<Napi::TypedArray>().TypedArrayType()) {
        case napi_float32_array: return "Float32Array";
        case napi_float64_array: return "Float64Array";
        case napi_int32_array: return "Int32Array";
        case napi_uint32_array: return "Uint32Array";
        case napi_uint8_array: return "Uint8Array";
        case napi_bigint64_array: return "BigInt64Array";
        default: return "another typed array";
      }
    }
    if (v.IsArray()) return "Array";
    if (v.IsString()) return "string";
    if (v.IsNumber()) return "number";
    if (v.IsBoolean()) return "boolean";
    if (v.IsBigInt()) return "bigint";
    if (v.IsFunction()) return "function";
    return "object";
  }

  Napi::Env env_;
  const char* fn_;
  Devices devices_;
  Napi::Object obj_;
  // Set by the first buffer() read (buffer() is const: reading arguments does not change the call).
  mutable std::string first_buffer_;
  mutable Device device_ = Device::Cpu;
};

}  // namespace othink
