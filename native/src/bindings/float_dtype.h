// The dtype of a float argument of a binding that takes float32 or bfloat16: a tensor's `dtype`,
// or a typed array's kind (Float32Array: float32, Uint16Array: bfloat16 bits). Read before
// Args::buffer, which checks the buffer against the dtype it is given.
#pragma once
#include <napi.h>

#include <string>

#include "args.h"

namespace othink {

enum class FloatDType { F32, BF16 };

inline const char* dtype_name(FloatDType d) { return d == FloatDType::F32 ? "float32" : "bfloat16"; }

inline FloatDType float_dtype(const Args& a, const char* name) {
  if (!a.has(name)) a.type_error(std::string(name) + " is required (a float32 or bfloat16 tensor)");
  const Napi::Value v = a.value(name);
  if (v.IsTypedArray()) {
    const napi_typedarray_type kind = v.As<Napi::TypedArray>().TypedArrayType();
    if (kind == napi_float32_array) return FloatDType::F32;
    if (kind == napi_uint16_array) return FloatDType::BF16;
  } else if (v.IsObject()) {
    const Napi::Value d = v.As<Napi::Object>().Get("dtype");
    const std::string s = d.IsString() ? d.As<Napi::String>().Utf8Value() : "";
    if (s == "float32") return FloatDType::F32;
    if (s == "bfloat16") return FloatDType::BF16;
    if (!s.empty()) a.type_error(std::string(name) + " has dtype " + s + "; expected float32 or bfloat16");
  }
  a.type_error(std::string(name) + " must be a float32 or bfloat16 tensor (or a Float32Array / Uint16Array)");
}

}  // namespace othink
