// Helpers for tests that use the client library against brokers.
#pragma once

#include "alldata/client/client.h"

#include <gtest/gtest.h>

#include <vector>

namespace alldata::testing {

// Reads a whole scan in pages of 100, failing the test on an error.
inline std::vector<client::Event> scan_all(const client::ClientConfig& config, client::ScanOptions options) {
  auto scanner = client::Scanner::open(config, std::move(options));
  EXPECT_TRUE(scanner) << scanner.error().to_string();
  std::vector<client::Event> out;
  if (!scanner) return out;
  for (;;) {
    auto page = (*scanner)->next_page(100);
    EXPECT_TRUE(page) << page.error().to_string();
    if (!page || page->empty()) break;
    for (auto& e : *page) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace alldata::testing
