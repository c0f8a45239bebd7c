// Rules for names users choose. Stream names follow Kafka's topic rules so that tools and
// file names built from them stay safe: 1 to 249 characters of [A-Za-z0-9._-].
#pragma once

#include "alldata/protocol/error.h"

#include <string_view>

namespace alldata {

inline constexpr std::size_t kMaxStreamNameBytes = 249;

// kInvalidStream with the reason, or success.
Status validate_stream_name(std::string_view name);

}  // namespace alldata
