/* Tests of the C API (include/kiln/kiln.h) in C99, against libkiln.so and the default model
 * (SmolLM2-135M-Instruct Q4_1; exit 77 = skipped when it is absent). One program, one case per
 * argument: errors, stream, concurrent, cancel, text. Run by ctest, also under ASan + UBSan.
 * The answers are compared with each other (streamed vs whole, concurrent vs alone), never
 * only checked for being non-empty. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln/kiln.h"

#define SKIP 77
#define N_THREADS 8

static void fail(int line, const char* fmt, ...) {
  va_list args;
  fprintf(stderr, "capi_test.c:%d: ", line);
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fprintf(stderr, "\n  kiln_last_error: %s\n", kiln_last_error());
  exit(1);
}

#define CHECK(cond) \
  do { if (!(cond)) fail(__LINE__, "check failed: %s", #cond); } while (0)
#define CHECK_STATUS(expr, want)                                                          \
  do {                                                                                    \
    kiln_status got_ = (expr);                                                            \
    if (got_ != (want)) {                                                                 \
      fail(__LINE__, "%s returned %s, expected %s", #expr, kiln_status_name(got_),        \
           kiln_status_name(want));                                                       \
    }                                                                                     \
  } while (0)

/* ── Small helpers over JSON text (no JSON library in C; kiln's output has no spaces) ──── */

/* A growable string. */
typedef struct {
  char* data;
  size_t len, cap;
} Buf;

static void buf_append(Buf* b, const char* s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->data = (char*)realloc(b->data, b->cap);
    CHECK(b->data != NULL);
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* Appends the (still escaped) values of every "key":"…" string in `json` to `out`. */
static void append_string_fields(const char* json, const char* key, Buf* out) {
  char pattern[64];
  const char* p = json;
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  while ((p = strstr(p, pattern)) != NULL) {
    const char* start = p + strlen(pattern);
    const char* q = start;
    while (*q != '\0' && *q != '"') q += (*q == '\\' && q[1] != '\0') ? 2 : 1;
    buf_append(out, start, (size_t)(q - start));
    p = q;
  }
}

/* The integer value of "key": in `json`, or `missing` when absent. */
static long json_int(const char* json, const char* key, long missing) {
  char pattern[64];
  const char* p;
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  p = strstr(json, pattern);
  return p == NULL ? missing : strtol(p + strlen(pattern), NULL, 10);
}

static int contains(const char* haystack, const char* needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

/* ── Engine and requests ────────────────────────────────────────────────────────────────── */

static char g_model[4096];

static int find_model(void) {
  const char* env = getenv("KILN_TEST_MODEL");
  const char* cache = getenv("KILN_CACHE");
  const char* home = getenv("HOME");
  if (env != NULL && env[0] != '\0') {
    snprintf(g_model, sizeof g_model, "%s", env);
  } else if (cache != NULL && cache[0] != '\0') {
    snprintf(g_model, sizeof g_model, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
  } else {
    snprintf(g_model, sizeof g_model, "%s/.cache/kiln/models/SmolLM2-135M-Instruct.Q4_1.gguf",
             home != NULL ? home : ".");
  }
  return access(g_model, R_OK) == 0;
}

static kiln_engine* make_engine(void) {
  kiln_engine* engine = NULL;
  CHECK_STATUS(kiln_engine_create(g_model, "{\"max_sequences\": 8, \"context\": 1024}", &engine),
               KILN_OK);
  CHECK(engine != NULL);
  CHECK(strcmp(kiln_last_error(), "") == 0);
  return engine;
}

/* A greedy chat body: the user's message `content`, `max_tokens`, streamed or not. */
static void chat_body(char* out, size_t size, const char* content, int max_tokens, int stream) {
  snprintf(out, size,
           "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":%d,"
           "\"temperature\":0,\"seed\":7,\"stream\":%s,\"stream_options\":%s}",
           content, max_tokens, stream ? "true" : "false",
           stream ? "{\"include_usage\":true}" : "null");
}

/* Runs a request to its end; appends the "key" string fields of every item to `text` and the
 * finish reasons to `finish`. Returns the number of items. */
static int run_request(kiln_engine* engine, kiln_endpoint endpoint, const char* body,
                       const char* key, Buf* text, Buf* finish) {
  kiln_request* req = NULL;
  const char* item = NULL;
  int n = 0;
  kiln_status s;
  CHECK_STATUS(kiln_request_create(engine, endpoint, body, &req), KILN_OK);
  CHECK(req != NULL);
  while ((s = kiln_request_next(req, -1, &item)) == KILN_OK) {
    CHECK(item != NULL && item[0] == '{');
    append_string_fields(item, key, text);
    if (finish != NULL) append_string_fields(item, "finish_reason", finish);
    ++n;
  }
  CHECK_STATUS(s, KILN_DONE);
  CHECK(item == NULL);
  CHECK_STATUS(kiln_request_next(req, 0, &item), KILN_DONE); /* replayed */
  kiln_request_destroy(req);
  return n;
}

/* ── Cases ──────────────────────────────────────────────────────────────────────────────── */

/* A failing call: the status, a message, and OpenAI's error object naming `param` (if any). */
static void expect_error(int line, kiln_status got, kiln_status want, const char* param) {
  char needle[128];
  if (got != want) {
    fail(line, "returned %s, expected %s", kiln_status_name(got), kiln_status_name(want));
  }
  if (kiln_last_error()[0] == '\0') fail(line, "no error message");
  if (strncmp(kiln_last_error_json(), "{\"error\":{", 10) != 0) {
    fail(line, "error JSON is not OpenAI's error object: %s", kiln_last_error_json());
  }
  if (param != NULL) {
    snprintf(needle, sizeof needle, "\"param\":\"%s\"", param);
    if (!contains(kiln_last_error_json(), needle)) {
      fail(line, "error JSON does not name %s: %s", param, kiln_last_error_json());
    }
  }
}
#define EXPECT_ERROR(expr, want, param) expect_error(__LINE__, (expr), (want), (param))

static void test_engine_errors(void) {
  kiln_engine* engine = (kiln_engine*)&engine; /* must be reset to NULL on failure */
  EXPECT_ERROR(kiln_engine_create(NULL, NULL, &engine), KILN_ERROR_INVALID_ARGUMENT, NULL);
  CHECK(engine == NULL);
  EXPECT_ERROR(kiln_engine_create(g_model, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_engine_create("/nonexistent/kiln/model.gguf", NULL, &engine),
               KILN_ERROR_NOT_FOUND, "model");
  CHECK(contains(kiln_last_error(), "/nonexistent/kiln/model.gguf"));
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"thread\": 2}", &engine),
               KILN_ERROR_INVALID_ARGUMENT, "thread");
  CHECK(contains(kiln_last_error(), "unknown key 'thread'"));
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"threads\": ", &engine),
               KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_engine_create(g_model, "[1]", &engine), KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"threads\": \"many\"}", &engine),
               KILN_ERROR_INVALID_ARGUMENT, "threads");
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"context\": -5}", &engine),
               KILN_ERROR_INVALID_ARGUMENT, "context");
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"mode\": \"turbo\"}", &engine),
               KILN_ERROR_INVALID_ARGUMENT, "mode");
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"speculate\": \"sometimes\"}", &engine),
               KILN_ERROR_INVALID_ARGUMENT, "speculate");
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"device\": \"vulkan\"}", &engine),
               KILN_ERROR_UNIMPLEMENTED, "device");
  EXPECT_ERROR(kiln_engine_create(g_model, "{\"context\": 100000000}", &engine),
               KILN_ERROR_INVALID_ARGUMENT, NULL); /* beyond the model's training context */
  CHECK(engine == NULL);
}

static void test_request_errors(kiln_engine* engine) {
  kiln_request* req = (kiln_request*)&req;
  const char* item = NULL;
  char body[512];
  int32_t* ids = NULL;
  size_t n_ids = 0;
  char* text = NULL;
  int32_t bad_ids[2] = {1, -1};
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT, "{\"messages\": [", &req),
               KILN_ERROR_INVALID_ARGUMENT, NULL);
  CHECK(req == NULL);
  CHECK(contains(kiln_last_error(), "not valid JSON"));
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT, "[1, 2]", &req),
               KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT, "{}", &req),
               KILN_ERROR_INVALID_ARGUMENT, "messages");
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT,
                                   "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                   "\"temperature\":\"hot\"}", &req),
               KILN_ERROR_INVALID_ARGUMENT, "temperature");
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT,
                                   "{\"model\":null,\"messages\":[{\"role\":\"user\","
                                   "\"content\":\"x\"}]}", &req),
               KILN_ERROR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT,
                                   "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                   "\"audio\":{}}", &req),
               KILN_ERROR_UNIMPLEMENTED, "audio");
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_COMPLETIONS, "{\"prompt\": 5}", &req),
               KILN_ERROR_INVALID_ARGUMENT, "prompt");
  chat_body(body, sizeof body, "Hi", 5000, 0);
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT, body, &req),
               KILN_ERROR_INVALID_ARGUMENT, "max_tokens");
  CHECK(contains(kiln_last_error_json(), "context_length_exceeded"));
  EXPECT_ERROR(kiln_request_create(engine, (kiln_endpoint)7, body, &req),
               KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_request_create(NULL, KILN_ENDPOINT_CHAT, body, &req),
               KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_request_create(engine, KILN_ENDPOINT_CHAT, NULL, &req),
               KILN_ERROR_INVALID_ARGUMENT, NULL);
  CHECK(req == NULL);
  EXPECT_ERROR(kiln_request_next(NULL, 0, &item), KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_request_cancel(NULL), KILN_ERROR_INVALID_ARGUMENT, NULL);
  CHECK(kiln_request_id(NULL) == NULL);
  EXPECT_ERROR(kiln_tokenize(engine, "a", 1, 64u, &ids, &n_ids), KILN_ERROR_INVALID_ARGUMENT,
               "flags");
  EXPECT_ERROR(kiln_tokenize(engine, NULL, 3, 0, &ids, &n_ids), KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_detokenize(engine, bad_ids, 2, &text, NULL), KILN_ERROR_INVALID_ARGUMENT,
               "ids");
  CHECK(contains(kiln_last_error(), "ids[1] = -1"));
  CHECK(text == NULL);
  EXPECT_ERROR(kiln_engine_info(engine, NULL), KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_engine_metrics(NULL, &text), KILN_ERROR_INVALID_ARGUMENT, NULL);
  EXPECT_ERROR(kiln_engine_run(engine, KILN_ENDPOINT_CHAT, body, NULL, NULL),
               KILN_ERROR_INVALID_ARGUMENT, NULL);
  /* A success clears the thread's error. */
  CHECK_STATUS(kiln_engine_metrics(engine, &text), KILN_OK);
  CHECK(strcmp(kiln_last_error(), "") == 0 && strcmp(kiln_last_error_json(), "") == 0);
  kiln_free(text);
  CHECK(strcmp(kiln_status_name(KILN_ERROR_CANCELLED), "CANCELLED") == 0);
  CHECK(strcmp(kiln_status_name((kiln_status)1234), "UNKNOWN") == 0);
}

/* A request that outlives its engine fails with FAILED_PRECONDITION, and keeps failing. */
static void test_request_after_destroy(void) {
  kiln_engine* engine = make_engine();
  kiln_request* req = NULL;
  const char* item = NULL;
  char body[512];
  chat_body(body, sizeof body, "Tell me a long story.", 200, 1);
  CHECK_STATUS(kiln_request_create(engine, KILN_ENDPOINT_CHAT, body, &req), KILN_OK);
  CHECK_STATUS(kiln_request_next(req, -1, &item), KILN_OK); /* the role chunk */
  kiln_engine_destroy(engine);
  EXPECT_ERROR(kiln_request_next(req, -1, &item), KILN_ERROR_FAILED_PRECONDITION, NULL);
  CHECK(item == NULL);
  CHECK(contains(kiln_last_error(), "destroyed"));
  EXPECT_ERROR(kiln_request_next(req, 0, &item), KILN_ERROR_FAILED_PRECONDITION, NULL);
  CHECK_STATUS(kiln_request_cancel(req), KILN_OK);
  kiln_request_destroy(req);

  /* A request that ended before the destroy still reports its end. */
  engine = make_engine();
  chat_body(body, sizeof body, "Hi", 3, 1);
  CHECK_STATUS(kiln_request_create(engine, KILN_ENDPOINT_CHAT, body, &req), KILN_OK);
  do {
    CHECK_STATUS(kiln_request_next(req, -1, &item), KILN_OK);
  } while (!contains(item, "\"usage\":{")); /* the usage chunk follows the done event */
  kiln_engine_destroy(engine);
  CHECK_STATUS(kiln_request_next(req, -1, &item), KILN_DONE);
  kiln_request_destroy(req);
}

static int test_errors(void) {
  kiln_engine* engine;
  test_engine_errors();
  engine = make_engine();
  test_request_errors(engine);
  kiln_engine_destroy(engine);
  test_request_after_destroy();
  kiln_engine_destroy(NULL);
  kiln_request_destroy(NULL);
  kiln_free(NULL);
  return 0;
}

typedef struct {
  Buf text;
  int calls, stop_after;
} CallbackState;

static int collect_content(const char* json, void* user_data) {
  CallbackState* st = (CallbackState*)user_data;
  append_string_fields(json, "content", &st->text);
  ++st->calls;
  return st->stop_after > 0 && st->calls >= st->stop_after;
}

/* Streamed and whole answers carry the same text (greedy), for chat and completions; the
 * callback form streams the same chunks. */
static int test_stream(void) {
  kiln_engine* engine = make_engine();
  char body[512];
  Buf whole = {0}, streamed = {0}, whole_finish = {0}, stream_finish = {0};
  CallbackState cb;
  int n_items;
  chat_body(body, sizeof body, "Name three colors.", 24, 0);
  n_items = run_request(engine, KILN_ENDPOINT_CHAT, body, "content", &whole, &whole_finish);
  CHECK(n_items == 1);
  chat_body(body, sizeof body, "Name three colors.", 24, 1);
  n_items = run_request(engine, KILN_ENDPOINT_CHAT, body, "content", &streamed, &stream_finish);
  CHECK(n_items >= 4); /* role chunk, deltas, finish, usage */
  CHECK(whole.len > 0);
  if (strcmp(whole.data, streamed.data) != 0) {
    fail(__LINE__, "streamed text differs:\n  whole:    %s\n  streamed: %s", whole.data,
         streamed.data);
  }
  CHECK(strcmp(whole_finish.data, stream_finish.data) == 0);

  memset(&cb, 0, sizeof cb);
  CHECK_STATUS(kiln_engine_run(engine, KILN_ENDPOINT_CHAT, body, collect_content, &cb), KILN_OK);
  /* Same text; not necessarily the same chunks: speculation (on by default) may put several
   * tokens in one chunk, depending on what earlier requests left in the n-gram pool. */
  CHECK(cb.calls >= 3);
  if (strcmp(cb.text.data, whole.data) != 0) {
    fail(__LINE__, "callback text differs:\n  whole:    %s\n  callback: %s", whole.data,
         cb.text.data);
  }
  free(cb.text.data);
  memset(&cb, 0, sizeof cb);
  cb.stop_after = 2;
  CHECK_STATUS(kiln_engine_run(engine, KILN_ENDPOINT_CHAT, body, collect_content, &cb),
               KILN_ERROR_CANCELLED);
  CHECK(cb.calls == 2);
  free(cb.text.data);

  whole.len = streamed.len = 0;
  snprintf(body, sizeof body, "{\"prompt\":\"The sky is\",\"max_tokens\":16,\"temperature\":0}");
  CHECK(run_request(engine, KILN_ENDPOINT_COMPLETIONS, body, "text", &whole, NULL) == 1);
  snprintf(body, sizeof body,
           "{\"prompt\":\"The sky is\",\"max_tokens\":16,\"temperature\":0,\"stream\":true}");
  CHECK(run_request(engine, KILN_ENDPOINT_COMPLETIONS, body, "text", &streamed, NULL) > 1);
  CHECK(whole.len > 0 && strcmp(whole.data, streamed.data) == 0);
  free(whole.data);
  free(streamed.data);
  free(whole_finish.data);
  free(stream_finish.data);
  kiln_engine_destroy(engine);
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

typedef struct {
  kiln_engine* engine;
  char body[512];
  Buf text;
  int ok;
} Worker;

static void* worker_main(void* arg) {
  Worker* w = (Worker*)arg;
  kiln_request* req = NULL;
  const char* item = NULL;
  kiln_status s;
  if (kiln_request_create(w->engine, KILN_ENDPOINT_CHAT, w->body, &req) != KILN_OK) return NULL;
  /* Short timeouts on purpose: KILN_TIMEOUT is part of the loop. */
  while ((s = kiln_request_next(req, 5, &item)) == KILN_OK || s == KILN_TIMEOUT) {
    if (s == KILN_OK) append_string_fields(item, "content", &w->text);
  }
  w->ok = s == KILN_DONE;
  kiln_request_destroy(req);
  return NULL;
}

/* 8 threads stream 8 different requests at once on one engine; each answer equals the same
 * request's answer alone (greedy; DESIGN.md: tokens do not depend on the batch). */
static int test_concurrent(void) {
  kiln_engine* engine = make_engine();
  Worker workers[N_THREADS];
  pthread_t threads[N_THREADS];
  char* metrics = NULL;
  int i;
  for (i = 0; i < N_THREADS; ++i) {
    char content[64];
    memset(&workers[i], 0, sizeof workers[i]);
    workers[i].engine = engine;
    snprintf(content, sizeof content, "Write the number %d in words.", i + 1);
    chat_body(workers[i].body, sizeof workers[i].body, content, 12, 1);
  }
  for (i = 0; i < N_THREADS; ++i) {
    CHECK(pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0);
  }
  for (i = 0; i < N_THREADS; ++i) CHECK(pthread_join(threads[i], NULL) == 0);
  for (i = 0; i < N_THREADS; ++i) {
    Buf alone = {0};
    char content[64], body[512];
    if (!workers[i].ok) fail(__LINE__, "worker %d did not finish its request", i);
    snprintf(content, sizeof content, "Write the number %d in words.", i + 1);
    chat_body(body, sizeof body, content, 12, 0);
    CHECK(run_request(engine, KILN_ENDPOINT_CHAT, body, "content", &alone, NULL) == 1);
    if (workers[i].text.data == NULL || strcmp(alone.data, workers[i].text.data) != 0) {
      fail(__LINE__, "request %d: concurrent text differs from alone:\n  alone:      %s\n"
           "  concurrent: %s", i, alone.data, workers[i].text.data);
    }
    free(alone.data);
    free(workers[i].text.data);
  }
  /* The engine counts a request after its last event was sent: poll for the count. */
  for (i = 0; i < 200; ++i) {
    long finished;
    CHECK_STATUS(kiln_engine_metrics(engine, &metrics), KILN_OK);
    finished = json_int(metrics, "requests_finished", -1);
    kiln_free(metrics);
    CHECK(finished <= 2 * N_THREADS);
    if (finished == 2 * N_THREADS) break;
    sleep_ms(25);
  }
  CHECK(i < 200);
  kiln_engine_destroy(engine);
  return 0;
}

/* Polls the metrics until no sequence runs or waits and every used KV block is only the
 * prefix cache's (so freed for reuse); fails after ~10 s. */
static void expect_idle(kiln_engine* engine, int line) {
  int i;
  char* m = NULL;
  for (i = 0; i < 200; ++i) {
    CHECK_STATUS(kiln_engine_metrics(engine, &m), KILN_OK);
    if (json_int(m, "running", -1) == 0 && json_int(m, "queue_length", -1) == 0 &&
        json_int(m, "kv_blocks_used", -1) == json_int(m, "kv_blocks_cached", -2)) {
      kiln_free(m);
      return;
    }
    kiln_free(m);
    sleep_ms(50);
  }
  CHECK_STATUS(kiln_engine_metrics(engine, &m), KILN_OK);
  fail(line, "engine not idle after cancel: %s", m);
}

static void* next_forever(void* arg) {
  kiln_request* req = (kiln_request*)arg;
  const char* item = NULL;
  kiln_status s;
  while ((s = kiln_request_next(req, -1, &item)) == KILN_OK) {
  }
  return (void*)(size_t)s;
}

/* Cancel mid-stream: next fails with CANCELLED and the engine frees the sequence; a thread
 * blocked in kiln_request_next wakes up when another thread cancels. */
static int test_cancel(void) {
  kiln_engine* engine = make_engine();
  kiln_request* req = NULL;
  const char* item = NULL;
  char body[512], *m = NULL;
  pthread_t thread;
  void* result = NULL;
  int i;
  snprintf(body, sizeof body,
           "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],"
           "\"max_tokens\":500,\"ignore_eos\":true,\"stream\":true}");
  CHECK_STATUS(kiln_request_create(engine, KILN_ENDPOINT_CHAT, body, &req), KILN_OK);
  CHECK(strncmp(kiln_request_id(req), "chatcmpl-", 9) == 0);
  for (i = 0; i < 4; ++i) CHECK_STATUS(kiln_request_next(req, -1, &item), KILN_OK);
  CHECK(contains(item, kiln_request_id(req)));
  CHECK_STATUS(kiln_engine_metrics(engine, &m), KILN_OK);
  if (json_int(m, "running", -1) != 1 || json_int(m, "kv_blocks_used", 0) <= json_int(m, "kv_blocks_cached", 0)) {
    fail(__LINE__, "a generating request should hold a sequence and KV blocks: %s", m);
  }
  kiln_free(m);
  CHECK_STATUS(kiln_request_cancel(req), KILN_OK);
  EXPECT_ERROR(kiln_request_next(req, -1, &item), KILN_ERROR_CANCELLED, NULL);
  CHECK(item == NULL);
  EXPECT_ERROR(kiln_request_next(req, -1, &item), KILN_ERROR_CANCELLED, NULL);
  expect_idle(engine, __LINE__);
  kiln_request_destroy(req);

  CHECK_STATUS(kiln_request_create(engine, KILN_ENDPOINT_CHAT, body, &req), KILN_OK);
  CHECK(pthread_create(&thread, NULL, next_forever, req) == 0);
  sleep_ms(300);
  CHECK_STATUS(kiln_request_cancel(req), KILN_OK);
  CHECK(pthread_join(thread, &result) == 0);
  CHECK((kiln_status)(size_t)result == KILN_ERROR_CANCELLED);
  expect_idle(engine, __LINE__);
  kiln_request_destroy(req);

  /* Destroying an unfinished request cancels it too. */
  CHECK_STATUS(kiln_request_create(engine, KILN_ENDPOINT_CHAT, body, &req), KILN_OK);
  CHECK_STATUS(kiln_request_next(req, -1, &item), KILN_OK);
  CHECK_STATUS(kiln_request_next(req, -1, &item), KILN_OK);
  kiln_request_destroy(req);
  expect_idle(engine, __LINE__);
  kiln_engine_destroy(engine);
  return 0;
}

/* Tokenize / detokenize round trip (binary-safe), info, version. */
static int test_text(void) {
  kiln_engine* engine = make_engine();
  static const char kText[] = "Hello, world!\0tail"; /* 18 bytes with a NUL inside */
  int32_t* ids = NULL;
  size_t n_ids = 0, len = 0;
  char* text = NULL;
  char* info = NULL;
  CHECK_STATUS(kiln_tokenize(engine, kText, sizeof kText - 1, 0, &ids, &n_ids), KILN_OK);
  CHECK(n_ids >= 4 && ids != NULL);
  CHECK_STATUS(kiln_detokenize(engine, ids, n_ids, &text, &len), KILN_OK);
  CHECK(len == sizeof kText - 1 && memcmp(text, kText, len) == 0 && text[len] == '\0');
  kiln_free(ids);
  kiln_free(text);
  /* parse_special: the template's end token is one id; as plain text it is several. */
  CHECK_STATUS(kiln_tokenize(engine, "<|im_end|>", 10, KILN_TOKENIZE_PARSE_SPECIAL, &ids, &n_ids),
               KILN_OK);
  CHECK(n_ids == 1);
  kiln_free(ids);
  CHECK_STATUS(kiln_tokenize(engine, "<|im_end|>", 10, 0, &ids, &n_ids), KILN_OK);
  CHECK(n_ids > 1);
  kiln_free(ids);
  CHECK_STATUS(kiln_tokenize(engine, "", 0, 0, &ids, &n_ids), KILN_OK);
  CHECK(n_ids == 0 && ids == NULL);
  CHECK_STATUS(kiln_engine_info(engine, &info), KILN_OK);
  CHECK(json_int(info, "n_vocab", 0) == 49152);
  CHECK(contains(info, "\"architecture\":\"llama\""));
  CHECK(contains(info, "\"model_id\":\"SmolLM2-135M-Instruct.Q4_1\""));
  CHECK(json_int(info, "max_context", 0) == 1024);
  kiln_free(info);
  CHECK(strcmp(kiln_version(), "0.1.0") == 0);
  CHECK(kiln_abi_version() == KILN_ABI_VERSION);
  kiln_engine_destroy(engine);
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: capi_test errors|stream|concurrent|cancel|text\n");
    return 2;
  }
  if (!find_model()) {
    printf("SKIP: model missing at %s (run scripts/fetch_models.sh)\n", g_model);
    return SKIP;
  }
  if (strcmp(argv[1], "errors") == 0) return test_errors();
  if (strcmp(argv[1], "stream") == 0) return test_stream();
  if (strcmp(argv[1], "concurrent") == 0) return test_concurrent();
  if (strcmp(argv[1], "cancel") == 0) return test_cancel();
  if (strcmp(argv[1], "text") == 0) return test_text();
  fprintf(stderr, "unknown case %s\n", argv[1]);
  return 2;
}
