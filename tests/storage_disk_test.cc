// The store's disk guard: below the free-space minimum every write fails with a clear
// "disk full" error and stores nothing, reads go on, and the same folder takes writes
// again once the minimum is met. RocksDB logs through the store's logger, never into a LOG
// file in the folder.
#include "storage_test_support.h"

namespace alldata::storage {
namespace {

TEST_F(EventStoreTest, BelowTheFreeSpaceMinimumWritesFailAndReadsGoOn) {
  open();
  const auto before = keys_at(kT0, 10, 1);
  ASSERT_TRUE(write(batch_of("s", 0, before)));
  store_.reset();

  auto o = options();
  o.min_free_disk_bytes = 1ull << 60;  // more than any disk has
  open(o);
  auto refused = write(batch_of("s", 0, keys_at(kT0 + 100, 5, 1)));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kStorageError);
  EXPECT_NE(refused.error().message.find("disk full"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find("min-free-disk-bytes"), std::string::npos);
  EXPECT_EQ(keys_of(scan_all("s", 0)), before);
  store_.reset();

  open();  // room again
  const auto after = keys_at(kT0 + 100, 5, 1);
  ASSERT_TRUE(write(batch_of("s", 0, after)));
  auto all = before;
  all.insert(all.end(), after.begin(), after.end());
  EXPECT_EQ(keys_of(scan_all("s", 0)), all);
}

TEST_F(EventStoreTest, RocksDbWritesNoLogFileIntoTheDataFolder) {
  open();
  ASSERT_TRUE(write(batch_of("s", 0, keys_at(kT0, 10, 1))));
  store_.reset();
  for (const auto& entry : std::filesystem::directory_iterator(dir_ / "db")) {
    const std::string name = entry.path().filename().string();
    EXPECT_NE(name.rfind("LOG", 0), 0u) << "found " << name;
  }
}

}  // namespace
}  // namespace alldata::storage
