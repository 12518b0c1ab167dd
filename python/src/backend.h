// The one engine interface the Python bindings drive: kiln::ServingEngine when it is built
// (KILN_PY_HAVE_SERVING), else a single-request adapter over kiln::Engine with the same shape,
// so the Python package works (and is testable) before continuous batching lands.
#pragma once

#include <memory>
#include <string>

#include "kiln/serving.h"

namespace kiln::python {

// Starts the backend: ServingEngine::Start when available, otherwise LocalServingEngine.
StatusOr<std::unique_ptr<ServingEngine>> StartBackend(const ServingOptions& options);

// True when StartBackend uses the real ServingEngine (concurrent requests).
bool HaveServingEngine();

}  // namespace kiln::python
