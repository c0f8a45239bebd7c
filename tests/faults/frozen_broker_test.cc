// A broker frozen by SIGSTOP (it accepts connections in the kernel but never answers) costs
// a scan a bounded delay, never its events: four real brokers, RF 3, 8,000 events at
// QUORUM; one is stopped; scans through each of the others return every acknowledged event
// exactly once, at once (before the failure detector notices) and after it has.
#include "process_cluster.h"

namespace alldata::testing {
namespace {

using namespace std::chrono_literals;

const std::string kStream = "frozen";

TEST(FrozenBrokerTest, ScansReturnEverythingWithABoundedDelay) {
  TempDir dir;
  ProcessCluster cluster(dir.path(), 8, {"--repair-interval", "0"});
  ASSERT_TRUE(cluster.start(4));
  const auto acked = cluster.produce(kStream, 0, 8000, "before", {0, 1});
  ASSERT_EQ(acked.size(), 8000u);

  // Freeze the broker that scans read partition 0 from first.
  int frozen = -1;
  {
    RawConnection c(cluster.port(0));
    c.hello();
    auto m = c.metadata(kStream);
    ASSERT_EQ(m.error(), ErrorCode::kOk);
    const std::string first = m.get().getMetadata().getReplicaSets()[0].getNodeIds()[0].cStr();
    frozen = std::stoi(first.substr(1));
  }
  ASSERT_EQ(cluster.broker(frozen).signal(SIGSTOP), 0);
  auto check = [&](const char* when, std::chrono::milliseconds bound) {
    for (int i = 0; i < 4; ++i) {
      if (i == frozen) continue;
      auto s = cluster.scan(kStream, i);
      ASSERT_EQ(s.run.status, 0) << when << ", through b" << i << ": " << s.run.err;
      const auto [missing, twice] = ProcessCluster::missing_and_twice(acked, s.keys);
      EXPECT_EQ(missing, 0u) << when << ", through b" << i;
      EXPECT_EQ(twice, 0u) << when << ", through b" << i;
      EXPECT_LT(s.took, bound) << when << ", through b" << i << ": the scan took " << s.took.count() << " ms";
      std::printf("b%d %s: scan through b%d took %lld ms\n", frozen, when, i,
                  static_cast<long long>(s.took.count()));
    }
  };
  // Still "alive" in every view: readers that start on it wait for it, then move on.
  check("just frozen", 20s);
  // Once the others hold it dead, scans do not even try it first.
  const int other = frozen == 0 ? 1 : 0;
  ASSERT_TRUE(eventually([&] { return normal_members(cluster.port(other)) == 3; }, 60s));
  check("frozen and seen dead", 10s);
  ASSERT_EQ(cluster.broker(frozen).signal(SIGCONT), 0);
}

}  // namespace
}  // namespace alldata::testing
