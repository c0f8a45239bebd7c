#include "alldata/protocol/names.h"

#include <string>

namespace alldata {

Status validate_stream_name(std::string_view name) {
  if (name.empty()) return Error(ErrorCode::kInvalidStream, "the stream name is empty");
  if (name.size() > kMaxStreamNameBytes) {
    return Error(ErrorCode::kInvalidStream, "the stream name is " + std::to_string(name.size()) +
                                                " bytes, over the limit of " +
                                                std::to_string(kMaxStreamNameBytes));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Error(ErrorCode::kInvalidStream,
                   "stream name '" + std::string(name) +
                       "' has a character outside [A-Za-z0-9._-]");
    }
  }
  return {};
}

}  // namespace alldata
