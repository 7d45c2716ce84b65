// What the communicator moves: element types and reductions shared by the gloo and NCCL backends.
#pragma once
#include <cstddef>

namespace othink::comm {

// float64 is for host typed arrays only (metrics summed in double); tensors are float32 or int32.
enum class DType { F32, I32, F64 };
// Mean is sum / world size (float types only): what gradient averaging needs.
enum class ReduceOp { Sum, Mean, Max, Min };

inline size_t dtype_size(DType t) { return t == DType::F64 ? 8 : 4; }
inline const char* dtype_name(DType t) { return t == DType::F32 ? "float32" : t == DType::I32 ? "int32" : "float64"; }

}  // namespace othink::comm
