// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): valid
// requests of every kind, for both listeners, and valid gossip messages, plus a few
// malformed ones, so that fuzzing starts from inputs that reach deep into the decoders.
// Run by hand (`build/tests/fuzz_make_seeds tests/fuzz/corpus`) when the protocol changes;
// the files are checked in and replayed by the test command.
#include "alldata/protocol/framing.h"
#include "alldata/protocol/key.h"
#include "alldata/protocol/wire.h"
#include "membership/codec.h"

#include <capnp/message.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace {

using namespace alldata;

std::string frame(const std::function<void(wire::Request::Builder)>& fill, std::uint64_t id) {
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(id);
  fill(req);
  std::string out;
  protocol::append_frame(mb, out);
  return out;
}

void put(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

const Key kKey = Key::make(1'800'000'000'000ull, 0, 42);

void session_seeds(const std::filesystem::path& dir) {
  // byte 0: bit 0 = peer listener, bit 1 = hello first (fuzz_session.cc).
  const std::string client = std::string(1, '\x02');
  const std::string peer = std::string(1, '\x03');
  auto produce = frame([](auto r) {
    auto p = r.initProduce();
    p.setStream("fuzz");
    p.setPartition(1);
    p.setCommitLevel(wire::CommitLevel::ONE);
    auto events = p.initEvents(2);
    events[0].setPayload(protocol::data(std::string_view("hello")));
    auto h = events[1].initHeaders(1);
    h[0].setName("h");
    h[0].setValue(protocol::data(std::string_view("v")));
  }, 2);
  auto scan = frame([](auto r) {
    auto s = r.initScan();
    s.setStream("fuzz");
    s.setPartition(1);
    s.setMaxEvents(10);
  }, 3);
  auto metadata = frame([](auto r) { r.initMetadata().setStream("fuzz"); }, 4);
  auto replicate = frame([](auto r) {
    auto p = r.initReplicate();
    p.setStream("fuzz");
    p.setPartition(2);
    auto events = p.initEvents(1);
    events[0].setKey(protocol::data(kKey.view()));
    events[0].setPayload(protocol::data(std::string_view("copy")));
  }, 5);
  auto hints = frame([](auto r) {
    auto p = r.initDeliverHints();
    p.setStream("fuzz");
    p.setPartition(3);
    auto events = p.initEvents(1);
    events[0].setKey(protocol::data(kKey.view()));
  }, 6);
  auto digest = frame([](auto r) {
    auto d = r.initDigest();
    d.setStream("fuzz");
    d.setPartition(2);
  }, 7);
  auto fetch = frame([](auto r) {
    auto f = r.initFetchRange();
    f.setStream("fuzz");
    f.setPartition(2);
    f.setMaxKeys(10);
  }, 8);
  put(dir, "client-produce-scan", client + produce + scan);
  put(dir, "client-metadata", client + metadata);
  put(dir, "client-no-hello", std::string(1, '\x00') + produce);
  put(dir, "client-peer-request", client + replicate);
  put(dir, "peer-replicate-hints", peer + replicate + hints);
  put(dir, "peer-digest-fetch", peer + digest + fetch);
  put(dir, "garbage", client + std::string("\x10\x00\x00\x00garbage-garbage!", 20));
  put(dir, "huge-length", client + std::string("\xff\xff\xff\x7f", 4));
  put(dir, "half-frame", client + produce.substr(0, produce.size() / 2));
}

void gossip_seeds(const std::filesystem::path& dir) {
  using namespace alldata::broker;
  Datagram d;
  d.cluster = "alldata";
  d.from = "b0";
  d.from_address = "127.0.0.1:7402";
  d.from_incarnation = 3;
  d.messages.push_back(PingMsg{7, "b1"});
  d.messages.push_back(PingReqMsg{8, "b2", "127.0.0.1:7422", true});
  d.messages.push_back(AckMsg{7});
  d.messages.push_back(NackMsg{8});
  AliveMsg alive;
  alive.node_id = "b1";
  alive.address = "127.0.0.1:7412";
  alive.incarnation = 5;
  alive.state.client_address = "127.0.0.1:7410";
  alive.state.peer_address = "127.0.0.1:7411";
  alive.state.partitions = 16;
  alive.state.replication_factor = 3;
  d.messages.push_back(alive);
  d.messages.push_back(SuspectMsg{"b2", 4, "b0"});
  d.messages.push_back(DeadMsg{"b3", 1, "b0"});
  d.messages.push_back(RemovedMsg{"b4", "operator"});
  d.messages.push_back(RefusedMsg{"b5", "another cluster"});
  put(dir, "datagram-every-message", std::string(1, '\x00') + encode(d));
  Datagram empty = d;
  empty.messages.clear();
  put(dir, "datagram-empty", std::string(1, '\x00') + encode(empty));

  PushPullMsg p;
  p.cluster = "alldata";
  p.from = "b0";
  p.from_address = "127.0.0.1:7402";
  p.join = true;
  p.members.push_back(MemberEntry{alive, Liveness::kAlive, ""});
  p.tombstones.push_back(TombstoneEntry{"b9", "left", 1000, 2, true});
  put(dir, "push-pull-join", std::string(1, '\x01') + encode(p));
  p.query = true;
  p.join = false;
  put(dir, "push-pull-query", std::string(1, '\x01') + encode(p));
  put(dir, "foreign-magic", std::string("\x00" "ABCDEFGH", 9));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root(argv[1]);
  session_seeds(root / "session");
  gossip_seeds(root / "gossip");
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}
