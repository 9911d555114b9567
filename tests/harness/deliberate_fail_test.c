// SPDX-License-Identifier: GPL-2.0
/*
 * Not part of the suite: scripts/check.sh runs it as an extra test to prove
 * that a failing guest test makes the run fail.
 */
#include "kselftest_harness.h"

TEST(passes)
{
	EXPECT_EQ(1, 1);
}

TEST(deliberate_failure)
{
	EXPECT_EQ(1, 2) TH_LOG("this failure is the point of the test");
}

TEST_HARNESS_MAIN
