// A small tour of the AllData client library: produce a few events (with and without a
// partition key, with a callback and with a future), flush, then scan them back in key
// order and ask the cluster about itself.
//
//   alldata-example [HOST:PORT]      (default 127.0.0.1:7400; start one with `alldata dev`)
#include "alldata/client/client.h"

#include <chrono>
#include <cstdio>
#include <string>

using namespace alldata;
using namespace alldata::client;

int main(int argc, char** argv) {
  const std::string broker = argc > 1 ? argv[1] : "127.0.0.1:7400";
  const std::string stream = "example";

  // 1. Produce. send() returns the event's key at once; the callback (on the producer's
  //    I/O thread) learns whether the broker acknowledged it.
  ProducerConfig config;
  config.bootstrap = {broker};
  config.commit_level = CommitLevel::kQuorum;
  auto producer = Producer::create(config);
  if (!producer) {
    std::fprintf(stderr, "cannot create producer: %s\n", producer.error().to_string().c_str());
    return 1;
  }
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const Key first =
      Key::at_time(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  for (int i = 0; i < 10; ++i) {
    auto key = (*producer)->send(stream, "event " + std::to_string(i), {},
                                 [i](const Result<Key>& r) {
                                   if (!r) {
                                     std::fprintf(stderr, "event %d failed: %s\n", i,
                                                  r.error().to_string().c_str());
                                   }
                                 });
    if (!key) {
      std::fprintf(stderr, "send failed: %s\n", key.error().to_string().c_str());
      return 1;
    }
  }
  SendOptions keyed;
  keyed.partition_key = "user-42";  // every event of user-42 lands in the same partition
  const Header headers[] = {{"content-type", "text/plain"}};
  keyed.headers = headers;
  auto acked = (*producer)->send_async(stream, "a keyed event with a header", keyed).get();
  if (!acked) {
    std::fprintf(stderr, "keyed send failed: %s\n", acked.error().to_string().c_str());
    return 1;
  }
  if (auto ok = (*producer)->close(); !ok) {
    std::fprintf(stderr, "some events failed: %s\n", ok.error().to_string().c_str());
    return 1;
  }

  // 2. Scan everything written since `first`, merged over all partitions in key order.
  ClientConfig client;
  client.bootstrap = {broker};
  auto scanner = Scanner::open(client, ScanOptions{.stream = stream, .from = first});
  if (!scanner) {
    std::fprintf(stderr, "cannot scan: %s\n", scanner.error().to_string().c_str());
    return 1;
  }
  for (;;) {
    auto event = (*scanner)->next();
    if (!event) {
      std::fprintf(stderr, "scan failed: %s\n", event.error().to_string().c_str());
      return 1;
    }
    if (!*event) break;
    std::printf("%s  partition %2u  %s\n", (*event)->key.to_text().c_str(), (*event)->partition,
                (*event)->payload.c_str());
  }
  std::printf("resume later from: %s\n", (*scanner)->cursor().to_text().c_str());

  // 3. Ask the cluster about itself.
  auto admin = Admin::connect(client);
  if (admin) {
    if (auto m = (*admin)->metadata(); m) {
      std::printf("cluster: %zu member(s), %u partitions, replication factor %u\n",
                  m->members.size(), m->partitions, m->replication_factor);
    }
  }
  return 0;
}
