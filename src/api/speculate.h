// The public SpeculateOptions (kiln/engine.h) → the scheduler's SpeculateConfig. Shared by the
// single-sequence Engine (kiln run) and the ServingEngine.
#pragma once

#include "base/status.h"
#include "engine/speculate.h"
#include "kiln/engine.h"

namespace kiln::api {

// InvalidArgument for a draft_max outside [0, 64].
StatusOr<engine::SpeculateConfig> ToSpeculateConfig(const SpeculateOptions& options);

}  // namespace kiln::api
