// End to end as a user meets it: a real `alldata-broker` process and the `alldata` tool,
// input and output through files. The broker is stopped with SIGTERM and restarted on the
// same port; nothing acknowledged may be lost.
#include "process_support.h"
#include "test_support.h"

#include <sys/stat.h>

#include <set>
#include <sstream>

namespace alldata::testing {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::make_unique<BrokerProcess>(dir_.path() / "broker");
    ASSERT_TRUE(broker_->start()) << broker_->log();
  }

  std::string write_lines(const std::string& name, int from, int to) {
    const auto path = dir_.path() / name;
    std::ofstream f(path);
    for (int i = from; i <= to; ++i) f << i << "\n";
    return path.string();
  }

  std::string seq_text(int from, int to) {
    std::string s;
    for (int i = from; i <= to; ++i) s += std::to_string(i) + "\n";
    return s;
  }

  TempDir dir_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(CliTest, ProducedLinesScanBackExactlyAndInOrderAlsoAfterRestart) {
  const auto input = write_lines("seq.txt", 1, 10000);
  const auto acks = (dir_.path() / "acks.txt").string();
  auto p = run_tool({"produce", "-b", broker_->address(), "-s", "demo", "--acks", acks}, dir_.path(), input);
  ASSERT_EQ(p.status, 0) << p.err;

  // One ack line per input line: "<line number> <key>", every line number once.
  auto ack_lines = lines_of(read_file(acks));
  ASSERT_EQ(ack_lines.size(), 10000u);
  std::set<int> numbers;
  std::set<std::string> keys;
  for (const auto& l : ack_lines) {
    const auto space = l.find(' ');
    ASSERT_NE(space, std::string::npos) << l;
    numbers.insert(std::stoi(l.substr(0, space)));
    auto key = Key::parse(l.substr(space + 1));
    ASSERT_TRUE(key) << l;
    keys.insert(l.substr(space + 1));
  }
  EXPECT_EQ(numbers.size(), 10000u);
  EXPECT_EQ(*numbers.begin(), 1);
  EXPECT_EQ(*numbers.rbegin(), 10000);
  EXPECT_EQ(keys.size(), 10000u);

  auto s = run_tool({"scan", "-b", broker_->address(), "-s", "demo", "--format", "raw"}, dir_.path());
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_EQ(s.out, seq_text(1, 10000));

  ASSERT_EQ(broker_->stop(SIGTERM), 0) << broker_->log();
  ASSERT_TRUE(broker_->start()) << broker_->log();
  auto again = run_tool({"scan", "-b", broker_->address(), "-s", "demo", "--format", "raw"}, dir_.path());
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, seq_text(1, 10000));
}

TEST_F(CliTest, JsonLinesCarryKeyTimeStreamPartitionAndPayload) {
  const auto input = (dir_.path() / "in.txt").string();
  std::ofstream(input) << "plain\nwith \"quotes\" and \\ backslash\n";
  ASSERT_EQ(run_tool({"produce", "-b", broker_->address(), "-s", "j", "--partition-key", "k"}, dir_.path(), input).status, 0);
  auto s = run_tool({"scan", "-b", broker_->address(), "-s", "j", "--format", "jsonl"}, dir_.path());
  ASSERT_EQ(s.status, 0) << s.err;
  auto lines = lines_of(s.out);
  ASSERT_EQ(lines.size(), 2u) << s.out;
  for (const char* field : {"\"key\":", "\"time\":", "\"stream\":\"j\"", "\"partition\":", "\"payload\":"}) {
    EXPECT_NE(lines[0].find(field), std::string::npos) << field << " in " << lines[0];
  }
  EXPECT_NE(lines[0].find("\"payload\":\"plain\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find(R"("payload":"with \"quotes\" and \\ backslash")"), std::string::npos) << lines[1];
}

TEST_F(CliTest, ScanHonoursFromAndTo) {
  const auto acks = (dir_.path() / "acks.txt").string();
  ASSERT_EQ(run_tool({"produce", "-b", broker_->address(), "-s", "r", "--acks", acks}, dir_.path(),
                     write_lines("in.txt", 1, 100)).status, 0);
  std::map<int, std::string> key_of;
  for (const auto& l : lines_of(read_file(acks))) {
    key_of[std::stoi(l.substr(0, l.find(' ')))] = l.substr(l.find(' ') + 1);
  }
  auto s = run_tool({"scan", "-b", broker_->address(), "-s", "r", "--from", key_of[10], "--to", key_of[20],
                     "--format", "raw"}, dir_.path());
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_EQ(s.out, seq_text(10, 19));
}

TEST_F(CliTest, ProduceToNoBrokerFailsAndSaysHowManyWereNotAcknowledged) {
  const auto input = write_lines("in.txt", 1, 5);
  auto p = run_tool({"produce", "-b", "127.0.0.1:1", "-s", "x", "--delivery-timeout", "2s"}, dir_.path(), input);
  EXPECT_NE(p.status, 0);
  EXPECT_NE(p.err.find("5"), std::string::npos) << p.err;
}

TEST_F(CliTest, ClusterReportsTheBroker) {
  auto c = run_tool({"cluster", "-b", broker_->address(), "--json"}, dir_.path());
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_NE(c.out.find(broker_->address()), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("\"partitions\":16"), std::string::npos) << c.out;
}

TEST_F(CliTest, BenchPrintsKafkaStyleSummary) {
  auto b = run_tool({"bench", "produce", "-b", broker_->address(), "--num-records", "20000",
                     "--record-size", "100", "--commit-level", "ONE"}, dir_.path());
  ASSERT_EQ(b.status, 0) << b.err;
  auto lines = lines_of(b.out);
  ASSERT_FALSE(lines.empty());
  const auto& last = lines.back();
  EXPECT_EQ(last.rfind("20000 records sent, ", 0), 0u) << last;
  for (const char* part : {"records/sec (", "MB/sec), ", "ms avg latency, ", "ms max latency, ",
                           "ms 50th, ", "ms 95th, ", "ms 99th, ", "ms 99.9th."}) {
    EXPECT_NE(last.find(part), std::string::npos) << part << " in " << last;
  }
}

TEST_F(CliTest, AcknowledgedEventsSurviveARestartInTheMiddleOfProducing) {
  // The producer keeps retrying (same keys) while the broker is down, so every line ends
  // up acknowledged exactly once; each acknowledged key must be stored exactly once.
  constexpr int kLines = 500000;
  const auto input = write_lines("in.txt", 1, kLines);
  const auto acks = (dir_.path() / "acks.txt").string();
  const auto out = (dir_.path() / "produce.out").string();
  const auto err = (dir_.path() / "produce.err").string();
  const pid_t producer = spawn({env_or("ALLDATA_TOOL_BIN", "alldata"), "produce", "-b", broker_->address(),
                                "-s", "restart", "--acks", acks, "--delivery-timeout", "50s"},
                               input, out, err);
  ASSERT_GT(producer, 0);
  // Wait until some events are acknowledged, then restart the broker under the producer.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (lines_of(read_file(acks)).size() < 1000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto acked_before_stop = lines_of(read_file(acks)).size();
  ASSERT_EQ(broker_->stop(SIGTERM), 0) << broker_->log();
  ASSERT_TRUE(broker_->start()) << broker_->log();
  auto status = wait_exit(producer, std::chrono::seconds(120));
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0) << read_file(err);

  // The restart really happened while events were still being produced.
  EXPECT_LT(acked_before_stop, static_cast<std::size_t>(kLines));
  EXPECT_EQ(lines_of(read_file(acks)).size(), static_cast<std::size_t>(kLines));
  auto s = run_tool({"scan", "-b", broker_->address(), "-s", "restart", "--format", "raw"}, dir_.path());
  ASSERT_EQ(s.status, 0) << s.err;
  // Keys are made in input order, so the stored events are the input, once each, in order.
  EXPECT_TRUE(s.out == seq_text(1, kLines)) << "stored events differ from the input";
}

// Ctrl-C in the middle of `alldata produce` reading a pipe that stays open: it stops
// reading, gives what is in flight a moment, writes whole lines to the acks file, prints
// its summary and exits 130; the acks file, the summary and the store agree.
TEST_F(CliTest, CtrlCInProduceLeavesWholeAcksThatMatchTheStore) {
  const auto fifo = dir_.path() / "in.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto acks = (dir_.path() / "acks.txt").string();
  const auto err = (dir_.path() / "produce.err").string();
  // Opened before the spawn (which waits for the child to start): the child's open of
  // the FIFO for reading then finds a writer.
  const int in = ::open(fifo.c_str(), O_RDWR);
  ASSERT_GE(in, 0);
  const pid_t producer = spawn({env_or("ALLDATA_TOOL_BIN", "alldata"), "produce", "-b", broker_->address(),
                                "-s", "ctrlc", "--acks", acks},
                               fifo.string(), "", err);
  ASSERT_GT(producer, 0);
  constexpr int kLines = 30000;
  const std::string text = seq_text(1, kLines);
  ASSERT_EQ(::write(in, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  // The pipe stays open: produce waits for more input until it is interrupted.
  ASSERT_TRUE(eventually([&] { return keys_held(port_of(broker_->address()), "ctrlc", 16).size() == kLines; },
                         std::chrono::seconds(60)));
  ASSERT_EQ(::kill(producer, SIGINT), 0);
  auto status = wait_exit(producer, std::chrono::seconds(20));
  ::close(in);
  ASSERT_TRUE(status) << "produce did not end after Ctrl-C";
  EXPECT_EQ(*status, 130) << read_file(err);
  const std::string summary = read_file(err);
  EXPECT_NE(summary.find("30000 events acknowledged, 0 not acknowledged"), std::string::npos) << summary;
  EXPECT_NE(summary.find("interrupted after 30000 input lines"), std::string::npos) << summary;
  const std::string ack_text = read_file(acks);
  ASSERT_FALSE(ack_text.empty());
  EXPECT_EQ(ack_text.back(), '\n') << "the acks file ends inside a line";
  std::set<Key> acked;
  for (const auto& l : lines_of(ack_text)) {
    auto key = Key::parse(l.substr(l.find(' ') + 1));
    ASSERT_TRUE(key) << l;
    acked.insert(*key);
  }
  EXPECT_EQ(acked, keys_held(port_of(broker_->address()), "ctrlc", 16));
}

// Ctrl-C in the middle of `alldata scan --print-cursor` (its output a pipe read slowly):
// the events printed are whole, the cursor is printed, and a scan from the cursor returns
// exactly the rest.
TEST_F(CliTest, CtrlCInScanStillPrintsTheCursorToResumeFrom) {
  constexpr int kLines = 200000;
  ASSERT_EQ(run_tool({"produce", "-b", broker_->address(), "-s", "resume"}, dir_.path(),
                     write_lines("in.txt", 1, kLines))
                .status,
            0);
  const auto fifo = dir_.path() / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto err = (dir_.path() / "scan.err").string();
  // A reader before the spawn, so that the child's open for writing does not wait.
  const int out = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(out, 0);
  const pid_t scan = spawn({env_or("ALLDATA_TOOL_BIN", "alldata"), "scan", "-b", broker_->address(),
                            "-s", "resume", "--format", "raw", "--print-cursor"},
                           "", fifo.string(), err);
  ASSERT_GT(scan, 0);
  ASSERT_EQ(::fcntl(out, F_SETFL, 0), 0);
  std::string printed;
  char buffer[4096];
  while (printed.size() < 100000) {
    const ssize_t n = ::read(out, buffer, sizeof buffer);
    ASSERT_GT(n, 0) << "the scan ended before it was interrupted";
    printed.append(buffer, static_cast<std::size_t>(n));
  }
  ASSERT_EQ(::kill(scan, SIGINT), 0);
  for (ssize_t n; (n = ::read(out, buffer, sizeof buffer)) > 0;) printed.append(buffer, static_cast<std::size_t>(n));
  ::close(out);
  auto status = wait_exit(scan, std::chrono::seconds(20));
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 130) << read_file(err);
  ASSERT_LT(printed.size(), seq_text(1, kLines).size()) << "nothing was left to interrupt";
  const std::string cursor_line = read_file(err);
  const auto at = cursor_line.find("cursor: ");
  ASSERT_NE(at, std::string::npos) << cursor_line;
  const std::string cursor = cursor_line.substr(at + 8, cursor_line.find('\n', at) - at - 8);
  auto rest = run_tool({"scan", "-b", broker_->address(), "-s", "resume", "--format", "raw", "--from", cursor},
                       dir_.path());
  ASSERT_EQ(rest.status, 0) << rest.err;
  EXPECT_TRUE(printed + rest.out == seq_text(1, kLines))
      << "printed " << printed.size() << " bytes, then " << rest.out.size() << " from the cursor";
}

}  // namespace
}  // namespace alldata::testing
