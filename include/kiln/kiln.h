/* kiln.h: the C API of kiln (libkiln.so), for apps and for other languages' FFI (Swift,
 * Kotlin/Java over JNI, Go, Rust, C#, Dart, Python ctypes).
 *
 * One engine runs one model and serves many concurrent requests (continuous batching, paged
 * KV cache, prefix cache). Requests are OpenAI request bodies (JSON text) for
 * /v1/chat/completions or /v1/completions; answers are the JSON the kiln HTTP server sends for
 * the same body: the whole response, or the stream's chunks one by one. Only JSON text, plain
 * C types and opaque handles cross this boundary.
 *
 *   kiln_engine* engine;
 *   if (kiln_engine_create("model.gguf", "{\"threads\": 4}", &engine) != KILN_OK) {
 *     fprintf(stderr, "%s\n", kiln_last_error());
 *   }
 *   kiln_request* req;
 *   kiln_request_create(engine, KILN_ENDPOINT_CHAT,
 *       "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"stream\": true}", &req);
 *   const char* chunk;
 *   while (kiln_request_next(req, -1, &chunk) == KILN_OK) puts(chunk);
 *   kiln_request_destroy(req);
 *   kiln_engine_destroy(engine);
 *
 * ERRORS. Every function that can fail returns a kiln_status. KILN_OK (0) is success;
 * KILN_DONE and KILN_TIMEOUT are the two non-error outcomes of kiln_request_next; everything
 * >= KILN_ERROR_INVALID_ARGUMENT is an error. After a call that returns a kiln_status,
 * kiln_last_error() holds the message of that call's error ("" after a non-error status) and
 * kiln_last_error_json() the same error as OpenAI's error object. Both are per thread: the
 * strings belong to kiln and stay valid until the calling thread's next call that returns a
 * kiln_status.
 * Bad input (bad JSON, an unknown option, a missing model file, an out-of-range field, a NULL
 * where a pointer is required) is an error status, never an abort.
 *
 * OWNERSHIP. Handles are created by kiln_*_create and freed by the matching kiln_*_destroy.
 * A `char**` / `int32_t**` result is allocated by kiln and released by the caller with
 * kiln_free(). The chunk of kiln_request_next is owned by its request (see there). Input
 * strings are only read during the call.
 *
 * THREADS. An engine may be used from any number of threads at once: create requests,
 * tokenize, read info and metrics concurrently. A request is driven by one thread at a time
 * (kiln_request_next); kiln_request_cancel may be called from any thread while another thread
 * waits in kiln_request_next, kiln_request_destroy only when no other thread uses the request.
 * kiln_engine_destroy must not race with other calls on the same engine; requests may outlive
 * their engine (their next call then fails, see there).
 *
 * ABI. KILN_ABI_VERSION changes when a binary built against an older header would break;
 * kiln_abi_version() reports the library's. Every exported symbol is declared in this header.
 */
#ifndef KILN_KILN_H_
#define KILN_KILN_H_

#include <stddef.h>
#include <stdint.h>

#define KILN_ABI_VERSION 1

#if defined(_WIN32)
#define KILN_API __declspec(dllexport)
#else
#define KILN_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ── Status ───────────────────────────────────────────────────────────────────────────── */

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_DONE = 1,     /* kiln_request_next: the request has ended; no chunk */
  KILN_TIMEOUT = 2,  /* kiln_request_next: no chunk within the timeout; call again */
  KILN_ERROR_INVALID_ARGUMENT = 10,  /* bad JSON, bad option or field, NULL argument */
  KILN_ERROR_NOT_FOUND = 11,         /* model file or reference not found */
  KILN_ERROR_OUT_OF_RANGE = 12,      /* an index or size past a bound */
  KILN_ERROR_RESOURCE_EXHAUSTED = 13,/* a limit or memory */
  KILN_ERROR_UNIMPLEMENTED = 14,     /* valid but unsupported (a field, an option value) */
  KILN_ERROR_FAILED_PRECONDITION = 15,/* wrong state: e.g. the request's engine is destroyed */
  KILN_ERROR_CANCELLED = 16,         /* the request was cancelled */
  KILN_ERROR_UNAVAILABLE = 17,       /* transient: e.g. a download failed */
  KILN_ERROR_DATA_LOSS = 18,         /* a truncated or corrupt model file */
  KILN_ERROR_INTERNAL = 19           /* the engine failed the request (a kiln bug) */
} kiln_status;

/* "OK", "DONE", "TIMEOUT", "INVALID_ARGUMENT", …; "UNKNOWN" for other values. Static string. */
KILN_API const char* kiln_status_name(kiln_status status);

/* The message of the calling thread's last failed call ("" when its last call succeeded).
 * Owned by kiln; valid until this thread's next call that returns a kiln_status. Never NULL. */
KILN_API const char* kiln_last_error(void);

/* The same error as OpenAI's error object, the body the HTTP server would answer with:
 * {"error": {"message": …, "type": …, "param": … | null, "code": … | null}}. For a rejected
 * request body, "param" names the offending field. "" after a success. Same lifetime as
 * kiln_last_error(). */
KILN_API const char* kiln_last_error_json(void);

/* ── Version and memory ───────────────────────────────────────────────────────────────── */

/* The library's version, "MAJOR.MINOR.PATCH". Static string. */
KILN_API const char* kiln_version(void);

/* The library's KILN_ABI_VERSION: compare with the header's to detect a mismatched library. */
KILN_API int kiln_abi_version(void);

/* Frees a string or array that kiln returned through a `char**` / `int32_t**`. NULL is a
 * no-op. */
KILN_API void kiln_free(void* ptr);

/* ── Engine ───────────────────────────────────────────────────────────────────────────── */

typedef struct kiln_engine kiln_engine;

/* Loads a model and starts its engine thread.
 *   model:   a .gguf file, a Hugging Face model folder, "hf://org/name[/file]" (downloaded into
 *            kiln's cache) or "default".
 *   options: NULL, "" or a JSON object; every key is optional and an unknown key is an error
 *            naming it:
 *     "mode":           "local" (default) | "interactive" | "server": the memory and batching
 *                       preset (interactive: one sequence, long context; server: 16 sequences)
 *     "threads":        compute threads, 0 = all cores (default)
 *     "context":        tokens per sequence (prompt + output), 0 = from the preset
 *     "max_sequences":  sequences decoded together, 0 = from the preset
 *     "kv_memory_bytes": KV cache size, 0 = from the preset and free memory
 *     "prefill_chunk":  prompt tokens per step per sequence, 0 = from the preset
 *     "speculate":      "auto" (default) | "lookup" | "draft" | "off": speculative decoding
 *                       (never changes the output; a request may opt out with the body field
 *                       "speculation": "off"), as `kiln serve --speculate`
 *     "draft":          a draft model for speculation (same vocabulary as the model)
 *     "draft_max":      most guessed tokens per sequence per step, 0 = 8 lookup, 4 draft
 *     "model_id":       the "model" responses report and the default of a body's "model";
 *                       default: the file name without ".gguf"
 *     "device":         "cpu" (the only device of this build)
 * On success *out is the engine; on error *out is NULL. */
KILN_API kiln_status kiln_engine_create(const char* model, const char* options,
                                        kiln_engine** out);

/* Stops the engine thread and frees the model. Requests still alive end: their next
 * kiln_request_next returns KILN_ERROR_FAILED_PRECONDITION. NULL is a no-op. */
KILN_API void kiln_engine_destroy(kiln_engine* engine);

/* The model and the engine's configuration as a JSON object: "model_id", "path", "format",
 * "architecture", "name", "n_params", "n_vocab", "n_ctx_train", "n_layers", "n_embd",
 * "chat_template", "bos_id", "eos_id", "max_context" (tokens per sequence after presets),
 * "config" (one line describing the effective configuration). Free *json_out with kiln_free. */
KILN_API kiln_status kiln_engine_info(kiln_engine* engine, char** json_out);

/* The engine's counters as a JSON object (the fields of kiln serve's /metrics): "running",
 * "queue_length", "kv_blocks_total", "kv_blocks_used", "kv_blocks_cached" (of the used, held
 * only by the prefix cache), "requests_finished", "prompt_tokens_total",
 * "generated_tokens_total", "preemptions", "spec_drafted_tokens", "spec_accepted_tokens",
 * "gen_tok_s", … A request that ended or was
 * cancelled holds no KV block once the engine has stepped: kv_blocks_used == kv_blocks_cached
 * when nothing runs. Free *json_out with kiln_free. */
KILN_API kiln_status kiln_engine_metrics(kiln_engine* engine, char** json_out);

/* ── Text services ────────────────────────────────────────────────────────────────────── */

#define KILN_TOKENIZE_ADD_SPECIAL 1u   /* add BOS/EOS as the model's config says */
#define KILN_TOKENIZE_PARSE_SPECIAL 2u /* special-token text (e.g. "<|im_end|>") becomes the
                                          special token; otherwise it is plain text */

/* Token ids of `text_len` bytes of UTF-8 `text` (it may contain NUL bytes). *ids_out receives
 * an array of *n_ids_out ids (NULL when there are none); free it with kiln_free. */
KILN_API kiln_status kiln_tokenize(kiln_engine* engine, const char* text, size_t text_len,
                                   uint32_t flags, int32_t** ids_out, size_t* n_ids_out);

/* The text of `n_ids` token ids (each in [0, n_vocab), else KILN_ERROR_INVALID_ARGUMENT).
 * *text_out is NUL-terminated; *text_len_out (when not NULL) is its length in bytes. Free
 * *text_out with kiln_free. */
KILN_API kiln_status kiln_detokenize(kiln_engine* engine, const int32_t* ids, size_t n_ids,
                                     char** text_out, size_t* text_len_out);

/* ── Requests ─────────────────────────────────────────────────────────────────────────── */

typedef enum kiln_endpoint {
  KILN_ENDPOINT_CHAT = 0,        /* POST /v1/chat/completions */
  KILN_ENDPOINT_COMPLETIONS = 1  /* POST /v1/completions */
} kiln_endpoint;

typedef struct kiln_request kiln_request;

/* Validates an OpenAI request body (JSON text, UTF-8, NUL-terminated) and queues it. The body
 * is checked as the HTTP server checks it (same fields, same errors; the error's "param" names
 * the field), except that "model" may be left out (it defaults to the engine's model_id) and
 * any model name is accepted and echoed. Nothing is queued on error (*out is NULL).
 * "stream": true → the request yields the stream's chunks ("chat.completion.chunk" /
 * "text_completion" objects, with the include_usage chunk when stream_options asks for it);
 * otherwise it yields exactly one item, the whole response. */
KILN_API kiln_status kiln_request_create(kiln_engine* engine, kiln_endpoint endpoint,
                                         const char* body_json, kiln_request** out);

/* The request's next item, waiting up to `timeout_ms` milliseconds (< 0: until one comes).
 *   KILN_OK:      *json_out is the next chunk (or the whole response), NUL-terminated JSON
 *                 owned by the request and valid until the next kiln_request_next or
 *                 kiln_request_destroy on it.
 *   KILN_DONE:    the request has ended (what the server sends as "data: [DONE]");
 *                 *json_out is NULL; later calls return KILN_DONE again.
 *   KILN_TIMEOUT: nothing arrived within timeout_ms; *json_out is NULL; call again.
 *   an error:     *json_out is NULL and the request is over; later calls return the same
 *                 status. KILN_ERROR_CANCELLED after kiln_request_cancel;
 *                 KILN_ERROR_FAILED_PRECONDITION when the engine was destroyed before the
 *                 request ended (one that had ended still delivers its items and KILN_DONE);
 *                 KILN_ERROR_INTERNAL when the engine failed the request (the server's
 *                 "server_error" event; kiln_last_error_json() holds it). */
KILN_API kiln_status kiln_request_next(kiln_request* request, int32_t timeout_ms,
                                       const char** json_out);

/* Cancels the request: the engine frees its sequence and KV blocks at its next step, and the
 * request's next kiln_request_next returns KILN_ERROR_CANCELLED (a thread waiting in it wakes
 * up). Any thread; cancelling a request that has ended (the engine produced its last item)
 * does nothing. */
KILN_API kiln_status kiln_request_cancel(kiln_request* request);

/* The request's id ("chatcmpl-…" / "cmpl-…", the "id" of its JSON). Owned by the request. */
KILN_API const char* kiln_request_id(const kiln_request* request);

/* Frees the request, cancelling it first when it has not ended. NULL is a no-op. */
KILN_API void kiln_request_destroy(kiln_request* request);

/* Called with each chunk (or the whole response) of kiln_engine_run. `json` is valid only
 * during the call. Return 0 to continue, anything else to cancel the request. */
typedef int (*kiln_chunk_callback)(const char* json, void* user_data);

/* Convenience over the calls above: creates the request, calls `callback` with each item on
 * the calling thread until the request ends, and frees it. Returns KILN_OK when the request
 * completed, KILN_ERROR_CANCELLED when the callback stopped it, or the error of
 * kiln_request_create / kiln_request_next. No state outlives the call. */
KILN_API kiln_status kiln_engine_run(kiln_engine* engine, kiln_endpoint endpoint,
                                     const char* body_json, kiln_chunk_callback callback,
                                     void* user_data);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* KILN_KILN_H_ */
