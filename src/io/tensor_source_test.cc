#include "io/tensor_source.h"

#include <gtest/gtest.h>

namespace kiln::io {
namespace {

using Type = MetaValue::Type;

MetaValue Int(Type t, int64_t v) {
  MetaValue m;
  m.type = t;
  m.i = v;
  if (v >= 0) m.u = static_cast<uint64_t>(v);
  return m;
}

TEST(MetaValueTest, Conversions) {
  EXPECT_EQ(*Int(Type::kUint32, 7).AsInt("k"), 7);
  EXPECT_EQ(*Int(Type::kInt8, -3).AsDouble("k"), -3.0);
  MetaValue f;
  f.type = Type::kFloat32;
  f.f = 2.0;
  EXPECT_EQ(*f.AsInt("k"), 2);
  f.f = 2.5;
  EXPECT_EQ(f.AsInt("rope").status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f.AsInt("rope").status().message().find("rope"), std::string::npos);
  MetaValue s;
  s.type = Type::kString;
  s.s = "x";
  EXPECT_FALSE(s.AsInt("k").ok());
  EXPECT_FALSE(s.AsDouble("k").ok());
  EXPECT_FALSE(s.IsNumber());
  MetaValue big;
  big.type = Type::kUint64;
  big.u = ~0ull;
  EXPECT_FALSE(big.AsInt("k").ok());
  EXPECT_EQ(*big.AsDouble("k"), 18446744073709551615.0);
  EXPECT_EQ(big.ToString(), "18446744073709551615");
}

TEST(MetaValueTest, ToStringTruncatesArrays) {
  MetaValue a;
  a.type = Type::kArray;
  a.elem_type = Type::kInt32;
  for (int i = 0; i < 10; ++i) a.array.push_back(Int(Type::kInt32, i));
  EXPECT_EQ(a.ToString(3), "[0, 1, 2, ... (10 items)]");
  MetaValue b;
  b.type = Type::kBool;
  b.b = true;
  EXPECT_EQ(b.ToString(), "true");
  MetaValue n;
  EXPECT_EQ(n.ToString(), "null");
}

TEST(TensorInfoTest, NumElements) {
  TensorInfo t;
  EXPECT_EQ(t.NumElements(), 1);
  t.shape = {3, 0, 5};
  EXPECT_EQ(t.NumElements(), 0);
  t.shape = {3, 4, 5};
  EXPECT_EQ(t.NumElements(), 60);
}

}  // namespace
}  // namespace kiln::io
