// The ceilings' helpers in kernels/roofline.h that can be checked for
// behaviour rather than speed.
#include <thread>

#include "gtest/gtest.h"
#include "kernels/roofline.h"

namespace bitnet::kernels {
namespace {

// The line-transfer probe returns a time when there are two CPUs to bounce a
// line between, and 0 (not a hang) when there is one.
TEST(Roofline, LineTransfer) {
  const double us = MeasureLineTransfer(200);
  if (std::thread::hardware_concurrency() < 2) {
    EXPECT_EQ(us, 0);
  } else {
    EXPECT_GT(us, 0);
    EXPECT_LT(us, 1000);
  }
  EXPECT_EQ(MeasureLineTransfer(0), 0);  // too few round trips to time
}

}  // namespace
}  // namespace bitnet::kernels
