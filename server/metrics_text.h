// Prometheus text exposition (format 0.0.4) of the engine's and the HTTP layer's metrics.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "kiln/serving.h"

namespace kiln::server {

struct HttpCounters {
  std::map<int, int64_t> responses_by_status;  // HTTP status → responses sent
  int64_t in_flight = 0;                       // generation requests being served
  int64_t client_disconnects = 0;              // streams cancelled because the client left
  int64_t connections_open = 0;                // accepted TCP connections now
  int64_t connections_rejected = 0;            // over max_connections: answered 503
  int64_t read_timeouts = 0;                   // requests not received in time: 408, closed
  int64_t stream_stalls = 0;                   // streams ended for making no progress
};

std::string PrometheusText(const EngineMetrics& m, const HttpCounters& http);

}  // namespace kiln::server
