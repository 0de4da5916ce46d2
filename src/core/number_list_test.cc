#include "core/number_list.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace pigment {
namespace {

TEST(NumberList, ReadsTrimmedEntries) {
  EXPECT_EQ(parse_number_list("1, 2.5,1", "--x"), (std::vector<double>{1, 2.5, 1}));
  EXPECT_EQ(parse_number_list(" 5 ,\t5, 1e0 ", "--x"), (std::vector<double>{5, 5, 1}));
  EXPECT_EQ(parse_number_list("-0.5", "--x"), (std::vector<double>{-0.5}));
}

TEST(NumberList, RefusesEmptyEntriesAndNonNumbersNamingTheFlag) {
  for (const char* bad : {"", "1,,2", "1,", "1, x", "2.5abc", "inf", "nan", "1 2"}) {
    try {
      parse_number_list(bad, "--caption-line-weights");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("--caption-line-weights"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace pigment
