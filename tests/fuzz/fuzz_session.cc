// Fuzz target: bytes a client or a peer sends to a broker. One real broker (in this
// process, on loopback, a fresh data folder) takes every input on a new connection:
//   byte 0, bit 0: the peer listener instead of the client listener;
//   byte 0, bit 1: a valid hello is sent first (client or peer role to match), so the
//                  rest reaches the request decoders and not only the hello check;
//   the rest: written as is, then the write side is shut.
// The broker must answer or close within the deadline, and stay healthy: every 256 inputs
// (and at the end of a corpus replay) a fresh client says hello and gets its metadata.
// A crash, a sanitizer report, a hang or a failed health probe is a finding.
#include "alldata/broker/broker.h"
#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <capnp/message.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace {

using namespace alldata;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::string hello_frame(bool peer) {
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(1);
  auto h = req.initHello();
  h.setProtocolVersion(wire::PROTOCOL_VERSION);
  h.setClientId("fuzz");
  h.setRole(peer ? wire::Role::PEER : wire::Role::CLIENT);
  std::string out;
  protocol::append_frame(mb, out);
  return out;
}

struct Target {
  std::filesystem::path dir;
  std::unique_ptr<broker::Broker> broker;
  std::uint16_t client_port = 0;
  std::uint16_t peer_port = 0;
  std::uint64_t inputs = 0;

  Target() {
    char tmpl[] = "/tmp/alldata-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    broker::BrokerOptions o;
    o.data_dir = (dir / "broker").string();
    o.client_listen = "127.0.0.1:0";
    o.peer_listen = "127.0.0.1:0";
    o.sync = false;
    o.partitions = 4;
    o.max_frame_bytes = 1u << 20;
    o.hello_timeout = std::chrono::seconds(2);
    auto logger = std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
    auto started = broker::Broker::start(o, logger);
    if (!started) {
      std::fprintf(stderr, "fuzz_session: cannot start a broker: %s\n", started.error().to_string().c_str());
      std::abort();
    }
    broker = std::move(*started);
    client_port = broker->client_port();
    const std::string peer = broker->peer_address();
    peer_port = static_cast<std::uint16_t>(std::stoi(peer.substr(peer.rfind(':') + 1)));
  }
  ~Target() {
    broker->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Target& target() {
  static Target t;  // one broker for the whole run (libFuzzer calls never end otherwise)
  return t;
}

tcp::socket connect(asio::io_context& io, std::uint16_t port) {
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  timeval tv{5, 0};  // every read of an answer has a deadline
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return s;
}

// A fresh client says hello and asks for metadata; aborts if the broker does not answer.
void probe_health(std::uint16_t port) {
  asio::io_context io;
  auto s = connect(io, port);
  std::string out = hello_frame(false);
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(2);
  req.initMetadata();
  protocol::append_frame(mb, out);
  asio::write(s, asio::buffer(out));
  for (int i = 0; i < 2; ++i) {
    std::uint8_t header[4];
    boost::system::error_code ec;
    asio::read(s, asio::buffer(header), ec);
    if (ec) {
      std::fprintf(stderr, "fuzz_session: the broker failed a health probe: %s\n", ec.message().c_str());
      std::abort();
    }
    std::string body(protocol::read_frame_length(header), '\0');
    asio::read(s, asio::buffer(body), ec);
    if (ec) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  Target& t = target();
  const bool peer = (data[0] & 1) != 0;
  const bool hello = (data[0] & 2) != 0;
  asio::io_context io;
  boost::system::error_code ec;
  auto s = connect(io, peer ? t.peer_port : t.client_port);
  std::string bytes = hello ? hello_frame(peer) : std::string();
  bytes.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  asio::write(s, asio::buffer(bytes), ec);  // the broker may close early: fine
  s.shutdown(tcp::socket::shutdown_send, ec);
  // Drain answers until the broker closes; a read that times out is a hang.
  char sink[65536];
  for (;;) {
    const std::size_t n = s.read_some(asio::buffer(sink), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      std::fprintf(stderr, "fuzz_session: the broker neither answered nor closed within 5 s\n");
      std::abort();
    }
    if (ec || n == 0) break;
  }
  if (++t.inputs % 256 == 0) probe_health(t.client_port);
  return 0;
}

// Called by the corpus replay after the last input: the broker must still be healthy.
extern "C" void alldata_fuzz_finish() { probe_health(target().client_port); }
