// Framing: length prefix, limits checked before allocation, round trip of real messages,
// and malformed bodies surfacing as exceptions the broker catches.
#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <gtest/gtest.h>
#include <kj/exception.h>

namespace alldata::protocol {
namespace {

FrameBuffer body_of(const std::string& frame) {
  const auto n = read_frame_length(reinterpret_cast<const std::uint8_t*>(frame.data()));
  FrameBuffer buf(n);
  std::memcpy(buf.data(), frame.data() + kFrameHeaderBytes, n);
  return buf;
}

TEST(FramingTest, LengthIsBigEndian) {
  std::uint8_t p[4];
  write_frame_length(p, 0x01020304);
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[3], 4);
  EXPECT_EQ(read_frame_length(p), 0x01020304u);
}

TEST(FramingTest, RejectsZeroOversizedAndUnalignedLengths) {
  EXPECT_EQ(check_frame_length(0, 1024).error().code, ErrorCode::kBadRequest);
  EXPECT_FALSE(check_frame_length(2048, 1024));
  EXPECT_FALSE(check_frame_length(0xFFFFFFFFu, kDefaultMaxFrameBytes));
  EXPECT_NE(check_frame_length(0xFFFFFFFFu, kDefaultMaxFrameBytes).error().message.find("over the limit"),
            std::string::npos);
  EXPECT_FALSE(check_frame_length(12, 1024));
  EXPECT_TRUE(check_frame_length(16, 1024));
  EXPECT_TRUE(check_frame_length(1024, 1024));
}

TEST(FramingTest, RequestRoundTripsThroughAFrame) {
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(99);
  auto produce = req.initProduce();
  produce.setStream("orders");
  produce.setPartition(3);
  auto events = produce.initEvents(2);
  const std::string big(5000, 'x');
  events[0].setPayload(protocol::data("hello"));
  events[1].setPayload(protocol::data(big));
  std::string out = "prefix";
  const auto n = append_frame(mb, out);
  EXPECT_EQ(out.size(), 6 + n);
  const std::string frame = out.substr(6);
  EXPECT_EQ(read_frame_length(reinterpret_cast<const std::uint8_t*>(frame.data())) + 4, frame.size());

  auto buf = body_of(frame);
  auto reader = make_reader(buf);
  auto r = reader.getRoot<wire::Request>();
  EXPECT_EQ(r.getCorrelationId(), 99u);
  ASSERT_EQ(r.which(), wire::Request::PRODUCE);
  EXPECT_EQ(view(r.getProduce().getStream()), "orders");
  EXPECT_EQ(view(r.getProduce().getEvents()[0].getPayload()), "hello");
  EXPECT_EQ(r.getProduce().getEvents()[1].getPayload().size(), 5000u);
}

TEST(FramingTest, GarbageBodyThrowsInsteadOfCrashing) {
  FrameBuffer buf(64);
  for (std::uint32_t i = 0; i < 64; ++i) buf.data()[i] = static_cast<std::uint8_t>(0xA5 ^ i * 7);
  EXPECT_THROW(
      {
        auto reader = make_reader(buf);
        auto r = reader.getRoot<wire::Request>();
        (void)r.getProduce().getStream();
      },
      kj::Exception);
}

TEST(FramingTest, DecodeFailuresDescribeThemselvesForLogs) {
  FrameBuffer buf(64);
  for (std::uint32_t i = 0; i < 64; ++i) buf.data()[i] = 0xFF;
  std::exception_ptr caught;
  try {
    auto reader = make_reader(buf);
    (void)reader.getRoot<wire::Request>().getProduce().getStream();
  } catch (...) {
    caught = std::current_exception();
  }
  ASSERT_TRUE(caught);
  EXPECT_FALSE(describe_exception(caught).empty());
  EXPECT_NE(describe_exception(caught), "unknown exception") << "kj::Exception is described";
  EXPECT_EQ(describe_exception(std::make_exception_ptr(std::runtime_error("disk on fire"))), "disk on fire");
  EXPECT_EQ(describe_exception(std::make_exception_ptr(42)), "unknown exception");
  EXPECT_EQ(describe_exception(nullptr), "");
}

TEST(FramingTest, TraversalLimitScalesWithFrameSize) {
  EXPECT_GE(reader_options(8).traversalLimitInWords, 1024u);
  EXPECT_EQ(reader_options(1u << 20).traversalLimitInWords, (1u << 20) / 8 * 4);
  EXPECT_EQ(reader_options(64, 5).nestingLimit, 5);
}

}  // namespace
}  // namespace alldata::protocol
