// Prometheus text exposition of EngineMetrics (see metrics_text.h).
#include "metrics_text.h"

#include <vector>

namespace kiln::server {
namespace {

void Metric(std::string* out, const char* name, const char* type, const char* help,
            double value) {
  *out += StrFormat("# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

// EngineMetrics holds per-bucket counts (+Inf last); Prometheus wants cumulative `le` buckets.
void Histogram(std::string* out, const char* name, const char* help,
               const std::vector<double>& bounds, const std::vector<int64_t>& counts,
               double sum) {
  *out += StrFormat("# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  int64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    std::string le = i < bounds.size() ? StrFormat("%g", bounds[i]) : "+Inf";
    *out += StrFormat("%s_bucket{le=\"%s\"} %lld\n", name, le.c_str(),
                      static_cast<long long>(cumulative));
  }
  if (counts.size() <= bounds.size()) {  // engine sent no +Inf bucket: add it
    *out += StrFormat("%s_bucket{le=\"+Inf\"} %lld\n", name, static_cast<long long>(cumulative));
  }
  *out += StrFormat("%s_sum %.17g\n", name, sum);
  *out += StrFormat("%s_count %lld\n", name, static_cast<long long>(cumulative));
}

}  // namespace

std::string PrometheusText(const EngineMetrics& m, const HttpCounters& http) {
  std::string out;
  Metric(&out, "kiln_queue_length", "gauge", "Requests waiting to be scheduled.", m.queue_length);
  Metric(&out, "kiln_running", "gauge", "Sequences being decoded.", m.running);
  Metric(&out, "kiln_kv_blocks_total", "gauge", "KV cache blocks in the pool.", m.kv_blocks_total);
  Metric(&out, "kiln_kv_blocks_used", "gauge", "KV cache blocks in use.", m.kv_blocks_used);
  Metric(&out, "kiln_kv_blocks_cached", "gauge",
         "Used KV blocks held only by the prefix cache (reusable, evicted on demand).",
         m.kv_blocks_cached);
  Metric(&out, "kiln_kv_fragmentation_ratio", "gauge",
         "Unfilled slots / slots of the KV blocks sequences hold.",
         m.kv_slots_allocated > 0 ? double(m.kv_slots_unfilled) / m.kv_slots_allocated : 0.0);
  Metric(&out, "kiln_kv_slot_steps_allocated_total", "counter",
         "Slots of KV blocks sequences hold, summed over engine steps.", m.kv_slot_steps_allocated);
  Metric(&out, "kiln_kv_slot_steps_unfilled_total", "counter",
         "Unfilled slots of KV blocks sequences hold, summed over steps.", m.kv_slot_steps_unfilled);
  Metric(&out, "kiln_kv_block_tokens", "gauge", "Tokens per KV block.", m.kv_block_tokens);
  Metric(&out, "kiln_kv_cache_usage_ratio", "gauge", "Fraction of KV blocks in use.",
         m.kv_blocks_total > 0 ? double(m.kv_blocks_used) / m.kv_blocks_total : 0.0);
  Metric(&out, "kiln_prefix_cache_queries_total", "counter", "Prefix cache lookups.",
         m.prefix_cache_queries);
  Metric(&out, "kiln_prefix_cache_query_tokens_total", "counter",
         "Prompt tokens looked up in the prefix cache.", m.prefix_cache_query_tokens);
  Metric(&out, "kiln_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens served from the prefix cache.", m.prefix_cache_hit_tokens);
  Metric(&out, "kiln_prefix_cache_hit_rate", "gauge", "Hit tokens / query tokens.",
         m.prefix_cache_query_tokens > 0
             ? double(m.prefix_cache_hit_tokens) / m.prefix_cache_query_tokens
             : 0.0);
  Metric(&out, "kiln_requests_finished_total", "counter", "Requests finished.",
         m.requests_finished);
  Metric(&out, "kiln_prompt_tokens_total", "counter", "Prompt tokens processed.",
         m.prompt_tokens_total);
  Metric(&out, "kiln_generation_tokens_total", "counter", "Tokens generated.",
         m.generated_tokens_total);
  Metric(&out, "kiln_preemptions_total", "counter", "Sequences preempted.", m.preemptions);
  Metric(&out, "kiln_spec_drafted_tokens_total", "counter",
         "Speculation: guessed tokens verified in forwards.", m.spec_drafted_tokens);
  Metric(&out, "kiln_spec_accepted_tokens_total", "counter",
         "Speculation: guessed tokens the model's own sampling confirmed.", m.spec_accepted_tokens);
  Metric(&out, "kiln_generation_tokens_per_second", "gauge", "Recent generation throughput.",
         m.gen_tok_s);
  Histogram(&out, "kiln_time_to_first_token_ms", "Time to first token in milliseconds.",
            m.ttft_ms_buckets, m.ttft_ms_counts, m.ttft_ms_sum);
  Histogram(&out, "kiln_inter_token_latency_ms", "Time between tokens in milliseconds.",
            m.itl_ms_buckets, m.itl_ms_counts, m.itl_ms_sum);
  Metric(&out, "kiln_http_requests_in_flight", "gauge", "Generation requests being served.",
         http.in_flight);
  Metric(&out, "kiln_http_client_disconnects_total", "counter",
         "Requests cancelled because the client disconnected.", http.client_disconnects);
  Metric(&out, "kiln_http_connections", "gauge", "Open client connections.",
         http.connections_open);
  Metric(&out, "kiln_http_connections_rejected_total", "counter",
         "Connections over the limit, answered 503.", http.connections_rejected);
  Metric(&out, "kiln_http_request_read_timeouts_total", "counter",
         "Requests not fully received within the read timeout (408, connection closed).",
         http.read_timeouts);
  Metric(&out, "kiln_http_stream_stalls_total", "counter",
         "Streams that made no progress within the stall timeout (error event, cancelled).",
         http.stream_stalls);
  out += "# HELP kiln_http_responses_total HTTP responses by status code.\n"
         "# TYPE kiln_http_responses_total counter\n";
  for (const auto& [status, count] : http.responses_by_status) {
    out += StrFormat("kiln_http_responses_total{code=\"%d\"} %lld\n", status,
                     static_cast<long long>(count));
  }
  return out;
}

}  // namespace kiln::server
