#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include <cstring>
#include "tensor/fp16.h"

namespace kiln::kv {
namespace {

float Elem(const backend::KvView& v, const uint8_t* row, int i) {
  if (v.dtype == DType::kF16) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    return Fp16ToFp32(h);
  }
  float f;
  std::memcpy(&f, row + 4 * i, 4);
  return f;
}

TEST(KvCacheTest, RejectsBadOptions) {
  EXPECT_EQ(KvCache::Create({0, 8, 1, 4, DType::kF32}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(KvCache::Create({1, 8, 1, 4, DType::kQ8_0}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(KvCacheTest, StoresAtPositionsAndViewsThem) {
  for (DType dt : {DType::kF32, DType::kF16}) {
    auto cache = KvCache::Create({2, 6, 2, 4, dt});
    ASSERT_TRUE(cache.ok());
    std::vector<float> k(2 * 8), v(2 * 8);
    for (int i = 0; i < 16; ++i) {
      k[i] = 0.5f * i + 0.1f;
      v[i] = -0.25f * i;
    }
    int32_t pos[2] = {3, 5};
    (*cache)->Store(1, pos, 2, k.data(), v.data());
    backend::KvView view = (*cache)->View(1);
    for (int t = 0; t < 2; ++t) {
      for (int h = 0; h < 2; ++h) {
        for (int i = 0; i < 4; ++i) {
          float want_k = k[t * 8 + h * 4 + i], want_v = v[t * 8 + h * 4 + i];
          if (dt == DType::kF16) {
            want_k = Fp16ToFp32(Fp32ToFp16(want_k));
            want_v = Fp16ToFp32(Fp32ToFp16(want_v));
          }
          EXPECT_EQ(Elem(view, view.KRow(pos[t], h), i), want_k);
          EXPECT_EQ(Elem(view, view.VRow(pos[t], h), i), want_v);
        }
      }
    }
  }
}

// CopySlots moves every head of every layer (the layout is head-major: one memcpy per head).
TEST(KvCacheTest, CopySlotsCopiesEveryHeadAndLayer) {
  auto cache = KvCache::Create({2, 8, 3, 4, DType::kF32});
  ASSERT_TRUE(cache.ok());
  std::vector<float> k(2 * 12), v(2 * 12);
  for (int i = 0; i < 24; ++i) {
    k[i] = 1.0f + i;
    v[i] = -1.0f - i;
  }
  int32_t pos[2] = {1, 2};
  for (int layer = 0; layer < 2; ++layer) (*cache)->Store(layer, pos, 2, k.data(), v.data());
  (*cache)->CopySlots(1, 5, 2);
  for (int layer = 0; layer < 2; ++layer) {
    backend::KvView view = (*cache)->View(layer);
    for (int t = 0; t < 2; ++t) {
      for (int h = 0; h < 3; ++h) {
        for (int i = 0; i < 4; ++i) {
          EXPECT_EQ(Elem(view, view.KRow(5 + t, h), i), k[t * 12 + h * 4 + i]);
          EXPECT_EQ(Elem(view, view.VRow(5 + t, h), i), v[t * 12 + h * 4 + i]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kv
