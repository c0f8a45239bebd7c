// Bad input never crashes or blocks the broker: each case gets a clear error (or a logged
// close) and, afterwards, a well-behaved client on another connection still produces and
// scans.
#include "test_support.h"

namespace alldata::testing {
namespace {

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto o = test_options(dir_.str());
    o.max_frame_bytes = 1u << 20;
    o.max_event_bytes = 64u << 10;
    broker_ = start_broker(o);
    ASSERT_TRUE(broker_);
  }

  // A fresh, well-behaved client can still write and read back.
  void expect_broker_healthy() {
    expect_serves(broker_->client_port(), "healthy-" + std::to_string(++probe_));
  }

  static std::string length_prefix(std::uint32_t n) {
    std::string s(4, '\0');
    protocol::write_frame_length(reinterpret_cast<std::uint8_t*>(s.data()), n);
    return s;
  }

  // Reads the broker's answer to a connection-fatal error, then expects the close.
  static void expect_error_then_close(RawConnection& c, ErrorCode code, std::string_view words) {
    auto r = c.read();
    ASSERT_TRUE(r) << "no error response before the close";
    EXPECT_EQ(r->error(), code) << r->message();
    EXPECT_NE(r->message().find(words), std::string::npos) << r->message();
    EXPECT_TRUE(c.closed_by_peer());
  }

  TempDir dir_;
  std::unique_ptr<broker::Broker> broker_;
  int probe_ = 0;
};

TEST_F(BadInputTest, ZeroLengthFrameIsRefusedAndTheConnectionClosed) {
  RawConnection c(broker_->client_port());
  c.send_bytes(length_prefix(0));
  expect_error_then_close(c, ErrorCode::kBadRequest, "zero-length");
  expect_broker_healthy();
}

TEST_F(BadInputTest, LengthOverTheLimitIsRefusedBeforeAllocating) {
  for (std::uint32_t n : {(1u << 20) + 8, 0xFFFFFFFFu}) {
    RawConnection c(broker_->client_port());
    c.send_bytes(length_prefix(n));
    expect_error_then_close(c, ErrorCode::kBadRequest, "over the limit");
  }
  expect_broker_healthy();
}

TEST_F(BadInputTest, GarbageBytesCloseOnlyThatConnection) {
  RawConnection other(broker_->client_port());
  ASSERT_EQ(other.hello().error(), ErrorCode::kOk);
  {
    RawConnection c(broker_->client_port());
    std::string garbage;
    std::mt19937 rng(7);
    for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>(rng()));
    c.send_bytes(garbage);
    auto r = c.read();
    if (r) {
      EXPECT_EQ(r->error(), ErrorCode::kBadRequest) << r->message();
    }
    EXPECT_TRUE(c.closed_by_peer());
  }
  // A well-formed length with a garbage body.
  {
    RawConnection c(broker_->client_port());
    std::string body(64, '\0');
    for (int i = 0; i < 64; ++i) body[i] = static_cast<char>(0xA5 ^ (i * 13));
    c.send_bytes(length_prefix(64) + body);
    expect_error_then_close(c, ErrorCode::kBadRequest, "malformed");
  }
  // The connection opened before is unaffected.
  auto r = other.produce("health", 1, {{"still here", {}}});
  EXPECT_EQ(r.error(), ErrorCode::kOk) << r.message();
  expect_broker_healthy();
}

TEST_F(BadInputTest, TruncatedFrameThenCloseLeavesNothingBehind) {
  {
    RawConnection c(broker_->client_port());
    c.hello();
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(5);
    auto p = req.initProduce();
    p.setStream("truncated");
    auto ev = p.initEvents(1);
    ev[0].setPayload(protocol::data("never stored"));
    std::string frame;
    protocol::append_frame(mb, frame);
    c.send_bytes(std::string_view(frame).substr(0, frame.size() / 2));
  }  // closes mid-frame
  expect_broker_healthy();
  RawConnection c(broker_->client_port());
  c.hello();
  EXPECT_TRUE(c.scan_all("truncated", 0).empty());
}

TEST_F(BadInputTest, RequestBeforeHelloIsRefused) {
  RawConnection c(broker_->client_port());
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(11);
  req.initMetadata();
  c.send(mb);
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error(), ErrorCode::kHelloRequired);
  EXPECT_EQ(r->get().getCorrelationId(), 11u);
  EXPECT_TRUE(c.closed_by_peer());
  expect_broker_healthy();
}

TEST_F(BadInputTest, UnknownRequestKindIsAnsweredAndTheSessionGoesOn) {
  RawConnection c(broker_->client_port());
  c.hello();
  // Build a metadata request, then rewrite its union discriminant to a kind that does not
  // exist: what a newer client would send to this broker.
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  const std::uint64_t marker = 0x1122334455667788ull;
  req.setCorrelationId(marker);
  req.initMetadata();
  std::string frame;
  protocol::append_frame(mb, frame);
  const std::string needle(reinterpret_cast<const char*>(&marker), 8);
  const auto at = frame.find(needle);
  ASSERT_NE(at, std::string::npos);
  // The discriminant is the 16-bit slot right after correlationId in the data section.
  ASSERT_EQ(static_cast<std::uint8_t>(frame[at + 8]), static_cast<std::uint8_t>(wire::Request::METADATA));
  frame[at + 8] = 99;
  c.send_bytes(frame);
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error(), ErrorCode::kUnknownRequest) << r->message();
  EXPECT_EQ(r->get().getCorrelationId(), marker);
  // Same connection still works.
  EXPECT_EQ(c.produce("health", 2, {{"after unknown", {}}}).error(), ErrorCode::kOk);
  expect_broker_healthy();
}

TEST_F(BadInputTest, ScanWithFromAfterToIsInvalidRange) {
  RawConnection c(broker_->client_port());
  c.hello();
  auto r = c.scan("any", 0, Key::at_time(2000), Key::at_time(1000));
  EXPECT_EQ(r.error(), ErrorCode::kInvalidRange);
  EXPECT_NE(r.message().find("after"), std::string::npos) << r.message();
  expect_broker_healthy();
}

TEST_F(BadInputTest, EmptyOrIllegalStreamNameIsInvalidStream) {
  RawConnection c(broker_->client_port());
  c.hello();
  auto r = c.produce("", 0, {{"x", {}}});
  EXPECT_EQ(r.error(), ErrorCode::kInvalidStream);
  EXPECT_NE(r.message().find("empty"), std::string::npos) << r.message();
  EXPECT_EQ(c.produce("a/b", 0, {{"x", {}}}).error(), ErrorCode::kInvalidStream);
  EXPECT_EQ(c.scan("", 0).error(), ErrorCode::kInvalidStream);
  expect_broker_healthy();
}

TEST_F(BadInputTest, OversizedEventIsRefusedAndNothingOfItsBatchStored) {
  RawConnection c(broker_->client_port());
  c.hello();
  auto r = c.produce("big", 0, {{"small", {}}, {std::string((64u << 10) + 1, 'x'), {}}});
  EXPECT_EQ(r.error(), ErrorCode::kEventTooLarge);
  EXPECT_NE(r.message().find("event 1"), std::string::npos) << r.message();
  EXPECT_TRUE(c.scan_all("big", 0).empty());
  expect_broker_healthy();
}

TEST_F(BadInputTest, BadPartitionAndBadKeyLengthAreRefused) {
  RawConnection c(broker_->client_port());
  c.hello();
  EXPECT_EQ(c.produce("p", 4, {{"x", {}}}).error(), ErrorCode::kInvalidPartition);
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(3);
  auto p = req.initProduce();
  p.setStream("p");
  auto ev = p.initEvents(1);
  ev[0].setKey(protocol::data("short"));
  auto r = c.call(mb);
  EXPECT_EQ(r.error(), ErrorCode::kBadRequest);
  EXPECT_NE(r.message().find("16 bytes"), std::string::npos) << r.message();
  expect_broker_healthy();
}

TEST_F(BadInputTest, PeerRequestOnAClientSessionIsNotAllowed) {
  RawConnection c(broker_->client_port());
  c.hello();
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(4);
  req.initReplicate().setStream("x");
  auto r = c.call(mb);
  EXPECT_EQ(r.error(), ErrorCode::kNotAllowed);
  expect_broker_healthy();
}

TEST_F(BadInputTest, HalfOpenConnectionDoesNotBlockOthers) {
  // A client that sends half a header and then goes silent holds only its own session.
  RawConnection silent(broker_->client_port());
  silent.send_bytes(std::string("\x00\x00", 2));
  expect_broker_healthy();
}

}  // namespace
}  // namespace alldata::testing
