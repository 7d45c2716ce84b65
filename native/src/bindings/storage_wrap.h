// The JS handle of a native memory block (`Storage`): tensors in @othink/core hold one each (views
// share it). dispose() frees the block at once; a finalizer frees it if JS never did.
#pragma once
#include <napi.h>

#include "storage.h"

namespace othink {

class StorageWrap : public Napi::ObjectWrap<StorageWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // New instance from C++ (allocStorage).
  static Napi::Object Create(Napi::Env env, size_t bytes, Device device, bool zero);
  // The StorageWrap behind a JS value, or nullptr if it is not one.
  static StorageWrap* From(const Napi::Value& v);

  explicit StorageWrap(const Napi::CallbackInfo& info);
  ~StorageWrap() override;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool disposed() const { return data_ == nullptr; }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value ByteLength(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  void release();
  // Checks a copy of `view` at byte_offset fits, and returns the view's bytes.
  std::pair<uint8_t*, size_t> checked_range(const Napi::CallbackInfo& info, const char* method);

  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::Cpu;
  size_t byte_offset_ = 0;
};

void register_storage(Napi::Env env, Napi::Object exports);

}  // namespace othink
