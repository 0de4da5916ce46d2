#include "core/hash.h"

#include <gtest/gtest.h>

#include "core/tensor.h"

namespace pigment {

// The values are pinned: they name the on-disk latent cache's files (training/trainer.cc), which later runs must find
// again. (Computed independently from the definition in hash.h.)
TEST(Hash, PinnedValues) {
  EXPECT_EQ(hash_bytes(std::string()), 0x0000000000000000ull);
  EXPECT_EQ(hash_bytes(std::string("abc")), 0xab88bac46e56b99cull);            // tail bytes only
  EXPECT_EQ(hash_bytes(std::string("abcdefgh")), 0x01304373bbb2ac42ull);       // one word
  EXPECT_EQ(hash_bytes(std::string("pigment latents")), 0xf17bf2a08c18a029ull);  // a word and a tail
  EXPECT_EQ(hash_bytes(Tensor::from_vector({2, 2}, {0.f, 0.5f, -1.f, 1.f})), 0x79c73abeba56b629ull);
  EXPECT_EQ(hex64(0xab88bac46e56b99cull), "ab88bac46e56b99c");
  EXPECT_EQ(hex64(1), "0000000000000001");
}

TEST(Hash, EveryByteMatters) {
  std::string s(37, 'x');
  const uint64_t h = hash_bytes(s);
  for (size_t i = 0; i < s.size(); ++i) {
    std::string t = s;
    t[i] ^= 1;
    EXPECT_NE(hash_bytes(t), h) << "byte " << i;
  }
  EXPECT_NE(hash_bytes(std::string(8, '\0')), hash_bytes(std::string(9, '\0')));  // the length counts
}

}  // namespace pigment
