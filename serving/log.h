// Progress and event lines on stderr for the serving binaries: one line per
// call, prefixed with the time and a component tag, never interleaved.
#pragma once

#include "absl/strings/string_view.h"

namespace bitnet::serving {

void LogLine(absl::string_view component, absl::string_view message);

}  // namespace bitnet::serving
