// A small, fully specified RNG (SplitMix64-seeded xoshiro256**), so sampled tokens for a seed
// are the same on every platform and standard library (std::uniform_*_distribution is not).
#pragma once

#include <cstdint>

namespace kiln::sampling {

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform double in [0, 1) with 53 random bits.
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

}  // namespace kiln::sampling
