// RefKernelTable: the scalar oracle, one entry per weight type kiln computes with.
#include "kernels/kernel_table.h"

#include <utility>

#include "kernels/norm.h"
#include "kernels/pack.h"
#include "kernels/ref/quant_rows.h"

namespace kiln::kernels {
namespace {

// The weight types with a dot product: their activation (dot) type, its quantizer, the dot
// product and the dequantizer. The activation-only types (Q8_1, Q8_K) get a dequantizer only.
void FillRefTable(KernelTable& t) {
  auto set = [&](DType w, DType dot, QuantizeRowFn quantize_dot, VecDotFn vec_dot,
                 DequantizeRowFn dequantize) {
    TypeKernels& k = t.For(w);
    k.dot_type = dot;
    k.quantize_dot = quantize_dot;
    k.vec_dot = vec_dot;
    k.dequantize = dequantize;
  };
  set(DType::kF32, DType::kF32, ref::QuantizeRowF32, ref::VecDotF32, ref::DequantizeRowF32);
  set(DType::kF16, DType::kF16, ref::QuantizeRowF16, ref::VecDotF16, ref::DequantizeRowF16);
  set(DType::kBF16, DType::kBF16, ref::QuantizeRowBF16, ref::VecDotBF16,
      ref::DequantizeRowBF16);
  set(DType::kQ4_0, DType::kQ8_0, ref::QuantizeActivationRowQ8_0, ref::VecDotQ4_0Q8_0,
      ref::DequantizeRowQ4_0);
  set(DType::kQ4_1, DType::kQ8_1, ref::QuantizeActivationRowQ8_1, ref::VecDotQ4_1Q8_1,
      ref::DequantizeRowQ4_1);
  set(DType::kQ5_0, DType::kQ8_0, ref::QuantizeActivationRowQ8_0, ref::VecDotQ5_0Q8_0,
      ref::DequantizeRowQ5_0);
  set(DType::kQ5_1, DType::kQ8_1, ref::QuantizeActivationRowQ8_1, ref::VecDotQ5_1Q8_1,
      ref::DequantizeRowQ5_1);
  set(DType::kQ8_0, DType::kQ8_0, ref::QuantizeActivationRowQ8_0, ref::VecDotQ8_0Q8_0,
      ref::DequantizeRowQ8_0);
  set(DType::kQ4_K, DType::kQ8_K, ref::QuantizeRowQ8_K, ref::VecDotQ4_KQ8_K,
      ref::DequantizeRowQ4_K);
  set(DType::kQ5_K, DType::kQ8_K, ref::QuantizeRowQ8_K, ref::VecDotQ5_KQ8_K,
      ref::DequantizeRowQ5_K);
  set(DType::kQ6_K, DType::kQ8_K, ref::QuantizeRowQ8_K, ref::VecDotQ6_KQ8_K,
      ref::DequantizeRowQ6_K);
  // Packed layouts (kernels/pack.h): gemm only (no per-row vec_dot or dequantize; the
  // backend unpacks a row when it needs one).
  for (auto [packed, gemm] : {std::pair{DType::kQ4_0_R16, &ref::GemmQ4_0R16},
                              std::pair{DType::kQ8_0_R16, &ref::GemmQ8_0R16},
                              std::pair{DType::kQ5_0_R16, &ref::GemmQ5_0R16}}) {
    TypeKernels& k = t.For(packed);
    k.dot_type = DType::kQ8_0;
    k.quantize_dot = ref::QuantizeActivationRowQ8_0;
    k.gemm = gemm;
  }
  for (auto [packed, gemm] : {std::pair{DType::kQ4_K_R16, &ref::GemmQ4_KR16},
                              std::pair{DType::kQ6_K_R16, &ref::GemmQ6_KR16}}) {
    TypeKernels& k = t.For(packed);
    k.dot_type = DType::kQ8_K;
    k.quantize_dot = ref::QuantizeRowQ8_K;
    k.gemm = gemm;
  }
  t.For(DType::kQ8_1).dequantize = ref::DequantizeRowQ8_1;
  t.For(DType::kQ8_K).dequantize = ref::DequantizeRowQ8_K;
  t.layer.attention = ref::AttentionRows;
  t.layer.rms_norm = ref::RmsNorm;
  t.layer.rope = ref::Rope;
  t.layer.gated_activation = ref::GatedActivation;
  t.layer.add = ref::Add;
  t.layer.ggml_attention = ggml::AttentionRowsTable;
  t.layer.ggml_swiglu = ggml::SwiGlu;
}

}  // namespace

const KernelTable& RefKernelTable() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "ref";
    FillRefTable(t);
    return t;
  }();
  return table;
}

}  // namespace kiln::kernels
