#include "alldata/protocol/commit_level.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace alldata {

std::string_view to_string(CommitLevel level) noexcept {
  switch (level) {
    case CommitLevel::kAny: return "ANY";
    case CommitLevel::kOne: return "ONE";
    case CommitLevel::kQuorum: return "QUORUM";
    case CommitLevel::kAll: return "ALL";
  }
  return "QUORUM";
}

Result<CommitLevel> parse_commit_level(std::string_view text) {
  std::string up(text);
  std::transform(up.begin(), up.end(), up.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (auto l : {CommitLevel::kAny, CommitLevel::kOne, CommitLevel::kQuorum, CommitLevel::kAll}) {
    if (up == to_string(l)) return l;
  }
  return Error(ErrorCode::kBadRequest,
               "unknown commit level '" + std::string(text) + "': use ANY, ONE, QUORUM or ALL");
}

std::uint32_t required_replicas(CommitLevel level, std::uint32_t rf) noexcept {
  switch (level) {
    case CommitLevel::kAny:
    case CommitLevel::kOne: return 1;
    case CommitLevel::kQuorum: return rf / 2 + 1;
    case CommitLevel::kAll: return std::max<std::uint32_t>(rf, 1);
  }
  return 1;
}

}  // namespace alldata
