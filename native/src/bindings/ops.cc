#include <utility>
#include <vector>

#include "bindings/ops_registry.h"
#include "bindings/register.h"

namespace othink {

namespace {
std::vector<std::pair<const char*, OpFunction>>& registry() {
  static std::vector<std::pair<const char*, OpFunction>> ops;  // built during static initialisation
  return ops;
}
}  // namespace

OpRegistration::OpRegistration(const char* name, OpFunction fn) { registry().emplace_back(name, fn); }

void register_ops(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
  for (const auto& [name, fn] : registry()) ops.Set(name, Napi::Function::New(env, fn, name));
  exports.Set("ops", ops);
}

}  // namespace othink
