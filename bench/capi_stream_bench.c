/* capi_stream_bench: decode speed of one stream through the C API (kiln.h), to compare with
 * `kiln bench` (issue #18: the C API's overhead per streamed token). Developer tool.
 *
 *   capi_stream_bench MODEL [n_gen=128] [threads=2] [repetitions=3] [n_prompt_words=100]
 *
 * Each repetition streams one greedy /v1/completions request of exactly n_gen tokens
 * (ignore_eos) and times decode as the C API's caller sees it: from the chunk of the first
 * token to the chunk of the last, (n_gen - 1) tokens. It also reports the calling thread's CPU
 * time per token: the C API's own work (waiting excluded): taking the event, building the
 * chunk JSON, handing it over. One warm-up run first. Prints one JSON line per repetition and
 * a summary line. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kiln.h"

static double now_s(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
  double decode_tok_s;   /* (n - 1) / (t_last - t_first) */
  double caller_cpu_us;  /* calling thread's CPU per token chunk */
  int n_chunks;          /* chunks that carried text */
} Run;

static int run_once(kiln_engine* engine, const char* body, Run* out) {
  kiln_request* req = NULL;
  const char* chunk = NULL;
  kiln_status s;
  double t_first = 0, t_last = 0, cpu0, cpu1;
  int n = 0;
  if (kiln_request_create(engine, KILN_ENDPOINT_COMPLETIONS, body, &req) != KILN_OK) {
    fprintf(stderr, "request: %s\n", kiln_last_error());
    return 0;
  }
  cpu0 = now_s(CLOCK_THREAD_CPUTIME_ID);
  while ((s = kiln_request_next(req, -1, &chunk)) == KILN_OK) {
    if (strstr(chunk, "\"text\":\"\"") != NULL) continue; /* the finish chunk */
    t_last = now_s(CLOCK_MONOTONIC);
    if (n == 0) t_first = t_last;
    ++n;
  }
  cpu1 = now_s(CLOCK_THREAD_CPUTIME_ID);
  kiln_request_destroy(req);
  if (s != KILN_DONE || n < 2) {
    fprintf(stderr, "stream ended with %s after %d chunks: %s\n", kiln_status_name(s), n,
            kiln_last_error());
    return 0;
  }
  out->decode_tok_s = (n - 1) / (t_last - t_first);
  out->caller_cpu_us = (cpu1 - cpu0) * 1e6 / n;
  out->n_chunks = n;
  return 1;
}

int main(int argc, char** argv) {
  const int n_gen = argc > 2 ? atoi(argv[2]) : 128;
  const int threads = argc > 3 ? atoi(argv[3]) : 2;
  const int reps = argc > 4 ? atoi(argv[4]) : 3;
  const int n_words = argc > 5 ? atoi(argv[5]) : 100;
  char options[128], *body, *prompt;
  kiln_engine* engine = NULL;
  double sum_tok_s = 0, sum_cpu = 0;
  Run r;
  int i;
  if (argc < 2 || n_gen < 2 || reps < 1 || n_words < 1 || n_words > 4000) {
    fprintf(stderr, "usage: %s MODEL [n_gen>=2] [threads] [repetitions] [n_prompt_words]\n",
            argv[0]);
    return 2;
  }
  /* No speculation: one token per chunk, the loop `kiln bench` times. */
  snprintf(options, sizeof options,
           "{\"mode\": \"interactive\", \"threads\": %d, \"speculate\": \"off\"}", threads);
  if (kiln_engine_create(argv[1], options, &engine) != KILN_OK) {
    fprintf(stderr, "engine: %s\n", kiln_last_error());
    return 1;
  }
  prompt = (char*)malloc((size_t)n_words * 6 + 1);
  body = (char*)malloc((size_t)n_words * 6 + 256);
  prompt[0] = '\0';
  for (i = 0; i < n_words; ++i) strcat(prompt, i % 2 ? "kiln " : "fire ");
  sprintf(body, "{\"prompt\": \"%s\", \"max_tokens\": %d, \"ignore_eos\": true, "
          "\"temperature\": 0, \"stream\": true}", prompt, n_gen);
  if (!run_once(engine, body, &r)) return 1; /* warm-up */
  for (i = 0; i < reps; ++i) {
    if (!run_once(engine, body, &r)) return 1;
    printf("{\"rep\": %d, \"tokens\": %d, \"decode_tok_s\": %.1f, \"caller_cpu_us_per_token\": %.1f}\n",
           i, r.n_chunks, r.decode_tok_s, r.caller_cpu_us);
    sum_tok_s += r.decode_tok_s;
    sum_cpu += r.caller_cpu_us;
  }
  printf("{\"summary\": true, \"threads\": %d, \"n_gen\": %d, \"decode_tok_s\": %.1f, "
         "\"caller_cpu_us_per_token\": %.1f}\n",
         threads, n_gen, sum_tok_s / reps, sum_cpu / reps);
  free(prompt);
  free(body);
  kiln_engine_destroy(engine);
  return 0;
}
