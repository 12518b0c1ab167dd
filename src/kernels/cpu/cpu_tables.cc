// The CPU tables (x86: avx2, avx512; AArch64: neon, neon_dotprod) assembled from the ISA
// directories' kernels. This file is compiled without ISA flags: it only takes addresses;
// the CPU check decides what may run.
#include "kernels/cpu/cpu_tables.h"

#include "kernels/cpu/cpu_features.h"

#if defined(KILN_KERNELS_X86)
#include "kernels/cpu/x86/isa_kernels.h"
#include "kernels/cpu/x86/layer_kernels.h"
#endif
#if defined(KILN_KERNELS_NEON)
#include "kernels/cpu/neon/neon_kernels.h"
#endif

namespace kiln::kernels::cpu {
namespace {

#if defined(KILN_KERNELS_X86)

// Activation (dot) type and quantizer per weight type; the same for both x86 tables.
void SetDotTypes(KernelTable& t) {
  struct Row {
    DType weight, dot;
    QuantizeRowFn quantize;
  };
  const Row rows[] = {
      {DType::kF32, DType::kF32, avx2::CopyF32},
      {DType::kF16, DType::kF16, avx2::QuantizeF16},
      {DType::kBF16, DType::kBF16, avx2::QuantizeBF16},
      {DType::kQ4_0, DType::kQ8_0, avx2::QuantizeQ8_0},
      {DType::kQ5_0, DType::kQ8_0, avx2::QuantizeQ8_0},
      {DType::kQ8_0, DType::kQ8_0, avx2::QuantizeQ8_0},
      {DType::kQ4_1, DType::kQ8_1, avx2::QuantizeQ8_1},
      {DType::kQ5_1, DType::kQ8_1, avx2::QuantizeQ8_1},
      {DType::kQ4_K, DType::kQ8_K, avx2::QuantizeQ8_K},
      {DType::kQ5_K, DType::kQ8_K, avx2::QuantizeQ8_K},
      {DType::kQ6_K, DType::kQ8_K, avx2::QuantizeQ8_K},
      // Packed layouts: the same quantizer pointer as the original type, so the backend can share
      // one quantized activation between packed and unpacked matrices. gemm only.
      {DType::kQ4_0_R16, DType::kQ8_0, avx2::QuantizeQ8_0},
      {DType::kQ8_0_R16, DType::kQ8_0, avx2::QuantizeQ8_0},
      {DType::kQ5_0_R16, DType::kQ8_0, avx2::QuantizeQ8_0},
      {DType::kQ4_K_R16, DType::kQ8_K, avx2::QuantizeQ8_K},
      {DType::kQ6_K_R16, DType::kQ8_K, avx2::QuantizeQ8_K},
  };
  for (const Row& r : rows) {
    t.For(r.weight).dot_type = r.dot;
    t.For(r.weight).quantize_dot = r.quantize;
  }
}

#define KILN_SET_DOT(T)                         \
  t.For(DType::k##T).vec_dot = ISA::VecDot##T; \
  t.For(DType::k##T).gemm = ISA::Gemm##T;
// Packed layouts: gemm only (vec_dot and dequantize stay null: pack.h).
#define KILN_SET_PACKED_GEMM                               \
  t.For(DType::kQ4_0_R16).gemm = ISA::GemmQ4_0R16;          \
  t.For(DType::kQ8_0_R16).gemm = ISA::GemmQ8_0R16;          \
  t.For(DType::kQ5_0_R16).gemm = ISA::GemmQ5_0R16;          \
  t.For(DType::kQ4_K_R16).gemm = ISA::GemmQ4_KR16;          \
  t.For(DType::kQ6_K_R16).gemm = ISA::GemmQ6_KR16;

KernelTable MakeAvx2() {
  KernelTable t;
  t.isa = "avx2";
  SetDotTypes(t);
  namespace ISA = ::kiln::kernels::avx2;
  KILN_X86_DOT_TYPES(KILN_SET_DOT)
  KILN_SET_PACKED_GEMM
  t.layer = {ISA::Attention, ISA::RmsNorm,    ISA::Rope,      ISA::GatedActivation,
             ISA::Add,       ISA::GgmlAttention, ISA::GgmlSwiGlu};
  return t;
}

KernelTable MakeAvx512() {
  KernelTable t;
  t.isa = "avx512";
  SetDotTypes(t);
  namespace ISA = ::kiln::kernels::avx512;
  KILN_X86_DOT_TYPES(KILN_SET_DOT)
  KILN_SET_PACKED_GEMM
  t.layer = {ISA::Attention, ISA::RmsNorm,    ISA::Rope,      ISA::GatedActivation,
             ISA::Add,       ISA::GgmlAttention, ISA::GgmlSwiGlu};
  return t;
}

#undef KILN_SET_DOT
#undef KILN_SET_PACKED_GEMM

std::vector<const KernelTable*> MakeCompiled() {
  static const KernelTable avx2 = MakeAvx2();
  static const KernelTable avx512 = MakeAvx512();
  return {&avx2, &avx512};
}

#elif defined(KILN_KERNELS_NEON)

// The AArch64 tables (kernels/cpu/neon): neon_dotprod differs from neon only in the integer
// dot products of the quantized types. The ggml-exact layer ops stay null: dispatch fills
// them from ref.
KernelTable MakeNeon(bool dotprod) {
  KernelTable t;
  t.isa = dotprod ? "neon_dotprod" : "neon";
  namespace N = ::kiln::kernels::neon;
  struct Row {
    DType weight, dot;
    QuantizeRowFn quantize;
  };
  const Row rows[] = {
      {DType::kF32, DType::kF32, N::CopyF32},        {DType::kF16, DType::kF16, N::QuantizeF16},
      {DType::kBF16, DType::kBF16, N::QuantizeBF16}, {DType::kQ4_0, DType::kQ8_0, N::QuantizeQ8_0},
      {DType::kQ5_0, DType::kQ8_0, N::QuantizeQ8_0}, {DType::kQ8_0, DType::kQ8_0, N::QuantizeQ8_0},
      {DType::kQ4_1, DType::kQ8_1, N::QuantizeQ8_1}, {DType::kQ5_1, DType::kQ8_1, N::QuantizeQ8_1},
      {DType::kQ4_K, DType::kQ8_K, N::QuantizeQ8_K}, {DType::kQ5_K, DType::kQ8_K, N::QuantizeQ8_K},
      {DType::kQ6_K, DType::kQ8_K, N::QuantizeQ8_K},
  };
  for (const Row& r : rows) {
    t.For(r.weight).dot_type = r.dot;
    t.For(r.weight).quantize_dot = r.quantize;
  }
#define KILN_SET_DOT(T)                                                   \
  t.For(DType::k##T).vec_dot = ISA::VecDot##T;                           \
  t.For(DType::k##T).gemm = ISA::Gemm##T;
  {
    namespace ISA = ::kiln::kernels::neon;
    KILN_NEON_FLOAT_TYPES(KILN_SET_DOT)
    if (!dotprod) {
      KILN_NEON_QUANT_TYPES(KILN_SET_DOT)
    }
  }
  if (dotprod) {
    namespace ISA = ::kiln::kernels::neon_dotprod;
    KILN_NEON_QUANT_TYPES(KILN_SET_DOT)
  }
#undef KILN_SET_DOT
  t.layer.attention = N::Attention;
  t.layer.rms_norm = N::RmsNorm;
  t.layer.rope = N::Rope;
  t.layer.gated_activation = N::GatedActivation;
  t.layer.add = N::Add;
  return t;
}

std::vector<const KernelTable*> MakeCompiled() {
  static const KernelTable neon = MakeNeon(false);
  static const KernelTable neon_dotprod = MakeNeon(true);
  return {&neon, &neon_dotprod};
}

#else

std::vector<const KernelTable*> MakeCompiled() { return {}; }

#endif

}  // namespace

std::vector<const KernelTable*> CompiledTables() { return MakeCompiled(); }

bool Supported(const KernelTable& table) {
  const CpuFeatures& f = GetCpuFeatures();
  if (table.isa == "avx2") return f.avx2;
  if (table.isa == "avx512") return f.avx512;
  if (table.isa == "neon") return f.neon;
  if (table.isa == "neon_dotprod") return f.neon_dotprod;
  return false;
}

}  // namespace kiln::kernels::cpu
