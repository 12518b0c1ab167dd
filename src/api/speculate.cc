#include "api/speculate.h"

#include <algorithm>

namespace kiln {

StatusOr<SpeculateMode> ParseSpeculateMode(std::string_view text) {
  if (text == "off") return SpeculateMode::kOff;
  if (text == "lookup") return SpeculateMode::kLookup;
  if (text == "auto") return SpeculateMode::kAuto;
  return InvalidArgument("speculate: expected off, lookup or auto, got '%.*s'",
                         static_cast<int>(text.size()), text.data());
}

const char* SpeculateModeName(SpeculateMode mode) {
  switch (mode) {
    case SpeculateMode::kOff: return "off";
    case SpeculateMode::kLookup: return "lookup";
    case SpeculateMode::kAuto: return "auto";
  }
  return "?";
}

namespace api {

StatusOr<engine::SpeculateConfig> ToSpeculateConfig(const SpeculateOptions& options) {
  constexpr int kMaxDraft = 64;
  if (options.draft_max < 0 || options.draft_max > kMaxDraft) {
    return InvalidArgument("draft_max must be in [0, %d] (0 = default), got %d", kMaxDraft,
                           options.draft_max);
  }
  engine::SpeculateConfig c;
  c.enabled = options.mode != SpeculateMode::kOff;
  c.adaptive = options.mode == SpeculateMode::kAuto;
  if (options.draft_max > 0) c.draft_max = options.draft_max;
  c.draft_min = std::min(c.draft_min, c.draft_max);
  return c;
}

}  // namespace api
}  // namespace kiln
