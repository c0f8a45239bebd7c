#include "alldata/client/types.h"

#include "client_wire.h"

#include <algorithm>
#include <cctype>

namespace alldata::client {

std::string_view to_string(ReadConsistency consistency) noexcept {
  return consistency == ReadConsistency::kQuorum ? "quorum" : "one";
}

Result<ReadConsistency> parse_read_consistency(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (auto c : {ReadConsistency::kOne, ReadConsistency::kQuorum}) {
    if (lower == to_string(c)) return c;
  }
  return Error(ErrorCode::kBadRequest,
               "unknown read consistency '" + std::string(text) + "': use one or quorum");
}

Result<std::vector<std::string>> parse_broker_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    auto item = text.substr(start, comma - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) {
      item.remove_prefix(1);
    }
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) {
      item.remove_suffix(1);
    }
    if (!item.empty()) {
      auto hp = detail::parse_host_port(item);
      if (!hp) return hp.error();
      out.emplace_back(item);
    }
    start = comma + 1;
  }
  if (out.empty()) {
    return Error(ErrorCode::kBadRequest, "no broker address given (expected host:port)");
  }
  return out;
}

}  // namespace alldata::client
