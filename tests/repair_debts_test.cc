// RepairDebts: debts merge per (owner, stream, partition), a debt that grew after it was
// read is not settled, the bound folds new ones into one per owner, and the stored text
// form reads back the same.
#include "repair/repair_debts.h"

#include <gtest/gtest.h>

namespace alldata::broker::repair {
namespace {

TEST(RepairDebtsTest, DebtsMergeAndTheOldestHoldsUntilSettled) {
  RepairDebts debts;
  EXPECT_FALSE(debts.oldest_ms().has_value());
  debts.add("b2", "s", 3, 500, 600);
  debts.add("b2", "s", 3, 400, 450);
  debts.add("b1", "s", 0, 900, 901);
  ASSERT_EQ(debts.size(), 2u);
  EXPECT_EQ(debts.oldest_ms(), 400u);
  const auto all = debts.all();
  const Debt b2 = all[1];
  EXPECT_EQ(b2, (Debt{"b2", "s", 3, 400, 600}));
  debts.add("b2", "s", 3, 300, 310);  // grew after it was read: stays
  debts.settle(b2);
  EXPECT_EQ(debts.size(), 2u);
  debts.settle(debts.all()[1]);
  EXPECT_EQ(debts.size(), 1u);
  EXPECT_EQ(debts.oldest_ms(), 900u);
}

TEST(RepairDebtsTest, PastTheBoundOneDebtPerOwnerCoversEverything) {
  RepairDebts debts(2);
  debts.add("b1", "s", 0, 10, 20);
  debts.add("b1", "s", 1, 30, 40);
  debts.add("b1", "t", 7, 5, 6);
  debts.add("b1", "u", 8, 50, 60);
  ASSERT_EQ(debts.size(), 3u);
  const auto all = debts.all();
  EXPECT_EQ(all[0], (Debt{"b1", "", kAllPartitions, 5, 60}));
}

TEST(RepairDebtsTest, TheStoredFormReadsBackTheSame) {
  RepairDebts debts;
  debts.add("node one", "stream/with spaces", 2, 100, 200);
  debts.add("b2", "s", kAllPartitions, 1, 2);
  RepairDebts again;
  ASSERT_TRUE(again.decode(debts.encode()));
  EXPECT_EQ(again.all(), debts.all());
  EXPECT_FALSE(again.decode("12 x\n"));
  EXPECT_FALSE(again.decode("1 2 3 99 short\n"));
}

}  // namespace
}  // namespace alldata::broker::repair
