#pragma once

// Input checks shared by the decoders and the raw-tensor path. Internal to server/preprocess.

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "server/preprocess/preprocess.h"

namespace visionserve::preprocess {

// OK when 0 < width, height <= limits.max_side and width * height <= limits.max_pixels;
// otherwise INVALID_ARGUMENT naming `what` (e.g. "PNG image") and the numbers.
absl::Status CheckDimensions(std::string_view what, int64_t width, int64_t height,
                             const Limits& limits);

}  // namespace visionserve::preprocess
