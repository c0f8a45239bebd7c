// Durations as users type them: "200ms", "1s", "5m", "1h", "2d", and ISO-8601 ones such as
// "PT1H", "PT15M", "P1D" (for partition intervals, as in the original AllData).
#pragma once

#include "alldata/protocol/error.h"

#include <chrono>
#include <string_view>

namespace alldata {

// Returns the duration in milliseconds, or kBadRequest naming the accepted forms.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace alldata
