"""The C API (libkiln.so, include/kiln/kiln.h) driven through ctypes: the ABI is callable
without headers, and it answers with the same JSON as `kiln serve` for the same bodies.

Needs $KILN_BUILD_DIR/libkiln.so, the kiln binary and the default model (skips otherwise).
"""

from __future__ import annotations

import ctypes
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

import pytest

from kiln_env import BUILD, GEMMA, KILN, MODELS, ROOT, SMOLLM, require
from test_server_util import post, running_server, sse_events, stream_lines

LIB_PATH = BUILD / "libkiln.so"
CHAT, COMPLETIONS = 0, 1
OK, DONE, TIMEOUT = 0, 1, 2
STATUS = {"INVALID_ARGUMENT": 10, "NOT_FOUND": 11, "UNIMPLEMENTED": 14,
          "FAILED_PRECONDITION": 15, "CANCELLED": 16}
ADD_SPECIAL, PARSE_SPECIAL = 1, 2
OPTIONS = {"mode": "local", "context": 2048}  # as test_server_util's `kiln serve`
MSG = [{"role": "user", "content": "Name three colours."}]
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def load_lib():
    require(LIB_PATH, "libkiln.so")
    lib = ctypes.CDLL(str(LIB_PATH))
    p, vp, c, i32, sz = (ctypes.POINTER, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                         ctypes.c_size_t)
    sigs = {
        "kiln_status_name": (c, [ctypes.c_int]),
        "kiln_last_error": (c, []),
        "kiln_last_error_json": (c, []),
        "kiln_version": (c, []),
        "kiln_abi_version": (ctypes.c_int, []),
        "kiln_free": (None, [vp]),
        "kiln_engine_create": (ctypes.c_int, [c, c, p(vp)]),
        "kiln_engine_destroy": (None, [vp]),
        "kiln_engine_info": (ctypes.c_int, [vp, p(vp)]),
        "kiln_engine_metrics": (ctypes.c_int, [vp, p(vp)]),
        "kiln_tokenize": (ctypes.c_int, [vp, c, sz, ctypes.c_uint32, p(vp), p(sz)]),
        "kiln_detokenize": (ctypes.c_int, [vp, p(i32), sz, p(vp), p(sz)]),
        "kiln_request_create": (ctypes.c_int, [vp, ctypes.c_int, c, p(vp)]),
        "kiln_request_next": (ctypes.c_int, [vp, i32, p(c)]),
        "kiln_request_cancel": (ctypes.c_int, [vp]),
        "kiln_request_id": (c, [vp]),
        "kiln_request_destroy": (None, [vp]),
        "kiln_engine_run": (ctypes.c_int, [vp, ctypes.c_int, c, CALLBACK, vp]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class KilnError(Exception):
    def __init__(self, status, message, error_json):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message
        self.error = json.loads(error_json) if error_json else None


class Engine:
    """A minimal ctypes wrapper, one method per C function family."""

    def __init__(self, lib, model, options=None):
        self.lib = lib
        self.handle = ctypes.c_void_p()
        opts = None if options is None else json.dumps(options).encode()
        self.check(lib.kiln_engine_create(str(model).encode(), opts, ctypes.byref(self.handle)))

    def check(self, status):
        if status not in (OK, DONE, TIMEOUT):
            raise KilnError(status, self.lib.kiln_last_error().decode(),
                            self.lib.kiln_last_error_json().decode())
        return status

    def close(self):
        self.lib.kiln_engine_destroy(self.handle)
        self.handle = ctypes.c_void_p()

    def _json_out(self, fn):
        out = ctypes.c_void_p()
        self.check(fn(self.handle, ctypes.byref(out)))
        try:
            return json.loads(ctypes.string_at(out.value).decode())
        finally:
            self.lib.kiln_free(out)

    def info(self):
        return self._json_out(self.lib.kiln_engine_info)

    def metrics(self):
        return self._json_out(self.lib.kiln_engine_metrics)

    def tokenize(self, text: bytes, flags=0):
        ids, n = ctypes.c_void_p(), ctypes.c_size_t()
        self.check(self.lib.kiln_tokenize(self.handle, text, len(text), flags, ctypes.byref(ids),
                                          ctypes.byref(n)))
        try:
            return list((ctypes.c_int32 * n.value).from_address(ids.value)) if n.value else []
        finally:
            self.lib.kiln_free(ids)

    def detokenize(self, ids):
        arr = (ctypes.c_int32 * len(ids))(*ids)
        text, n = ctypes.c_void_p(), ctypes.c_size_t()
        self.check(self.lib.kiln_detokenize(self.handle, arr, len(ids), ctypes.byref(text),
                                            ctypes.byref(n)))
        try:
            return ctypes.string_at(text.value, n.value)
        finally:
            self.lib.kiln_free(text)

    def request(self, endpoint, body):
        req = ctypes.c_void_p()
        text = body if isinstance(body, str) else json.dumps(body)
        self.check(self.lib.kiln_request_create(self.handle, endpoint, text.encode(),
                                                ctypes.byref(req)))
        return Request(self, req)

    def run(self, endpoint, body):
        """Every item of a request, parsed, until KILN_DONE."""
        req = self.request(endpoint, body)
        try:
            return [json.loads(item) for item in req]
        finally:
            req.close()


class Request:
    def __init__(self, engine, handle):
        self.engine, self.lib, self.handle = engine, engine.lib, handle

    def next(self, timeout_ms=-1):
        item = ctypes.c_char_p()
        status = self.engine.check(self.lib.kiln_request_next(self.handle, timeout_ms,
                                                              ctypes.byref(item)))
        return status, (item.value.decode() if status == OK else None)

    def __iter__(self):
        while True:
            status, item = self.next()
            if status == DONE:
                return
            yield item

    def cancel(self):
        self.engine.check(self.lib.kiln_request_cancel(self.handle))

    def close(self):
        self.lib.kiln_request_destroy(self.handle)


@pytest.fixture(scope="module")
def lib():
    return load_lib()


@pytest.fixture(scope="module")
def engine(lib):
    require(SMOLLM, "default model")
    e = Engine(lib, SMOLLM, OPTIONS)
    yield e
    e.close()


def test_abi_version_and_names(lib):
    header = (ROOT / "include" / "kiln" / "kiln.h").read_text()
    abi = int(re.search(r"#define KILN_ABI_VERSION (\d+)", header).group(1))
    assert lib.kiln_abi_version() == abi
    assert lib.kiln_version().decode() == "0.1.0"
    for name, value in STATUS.items():
        assert lib.kiln_status_name(value).decode() == name
        assert f"KILN_ERROR_{name} = {value}" in header


@pytest.mark.parametrize("model, options, status, needle", [
    ("/nonexistent/model.gguf", None, "NOT_FOUND", "/nonexistent/model.gguf"),
    (SMOLLM, {"threads": 2, "contxt": 512}, "INVALID_ARGUMENT", "unknown key 'contxt'"),
    (SMOLLM, {"threads": -1}, "INVALID_ARGUMENT", "'threads'"),
    (SMOLLM, {"mode": 3}, "INVALID_ARGUMENT", "'mode' must be a string"),
    (SMOLLM, {"device": "cuda"}, "UNIMPLEMENTED", "'device' \"cuda\""),
    (SMOLLM, "{not json", "INVALID_ARGUMENT", "not valid JSON"),
])
def test_engine_create_errors(lib, model, options, status, needle):
    require(SMOLLM, "default model")
    handle = ctypes.c_void_p(1234)
    opts = options if options is None or isinstance(options, str) else json.dumps(options)
    got = lib.kiln_engine_create(str(model).encode(), None if opts is None else opts.encode(),
                                 ctypes.byref(handle))
    assert got == STATUS[status], lib.kiln_last_error()
    assert handle.value is None
    assert needle in lib.kiln_last_error().decode()
    assert json.loads(lib.kiln_last_error_json())["error"]["message"]


def normalize(obj):
    """Drops what differs between two runs of one request: ids, timestamps, tool-call ids."""
    if isinstance(obj, list):
        return [normalize(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        if k == "created" or (k == "id" and isinstance(v, str) and
                              v.startswith(("chatcmpl-", "cmpl-", "call_"))):
            out[k] = "<" + k + ">"
        else:
            out[k] = normalize(v)
    return out


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}, "required": ["city"]}}}]

SAME_AS_SERVER = [
    ("chat", CHAT, {"messages": MSG, "max_tokens": 12, "temperature": 0, "logprobs": True,
                    "top_logprobs": 2}),
    ("chat_stream", CHAT, {"messages": MSG, "max_tokens": 10, "temperature": 0, "stream": True,
                           "stream_options": {"include_usage": True}}),
    ("chat_n2_seed", CHAT, {"messages": MSG, "max_tokens": 8, "n": 2, "seed": 11,
                            "temperature": 0.9}),
    ("chat_tools", CHAT, {"messages": [{"role": "user", "content": "Weather in Paris?"}],
                          "tools": TOOLS, "tool_choice": "required", "max_tokens": 40,
                          "temperature": 0}),
    ("chat_tools_stream", CHAT, {"messages": [{"role": "user", "content": "Weather in Oslo?"}],
                                 "tools": TOOLS, "tool_choice": "required", "max_tokens": 40,
                                 "temperature": 0, "stream": True}),
    ("completion", COMPLETIONS, {"prompt": "The capital of France is", "max_tokens": 8,
                                 "temperature": 0, "logprobs": 2}),
    ("completion_stream", COMPLETIONS, {"prompt": "Once upon a time", "max_tokens": 8,
                                        "temperature": 0, "stream": True, "logprobs": 1}),
    ("json_schema", CHAT, {"messages": [{"role": "user", "content": "A person, as JSON."}],
                           "max_tokens": 40, "temperature": 0,
                           "response_format": {"type": "json_schema", "json_schema": {
                               "name": "p", "schema": {"type": "object", "properties": {
                                   "name": {"type": "string"}, "age": {"type": "integer"}},
                                   "required": ["name", "age"]}}}}),
]


@pytest.fixture(scope="module")
def srv():
    with running_server() as s:
        yield s


def server_items(srv, endpoint, body):
    path = "/v1/chat/completions" if endpoint == CHAT else "/v1/completions"
    if not body.get("stream"):
        r = post(srv.base, path, body)
        assert r.status_code == 200, r.text
        return [r.json()]
    lines = stream_lines(srv.base, path, body)
    status, _ = next(lines)
    assert status == 200
    chunks, done = sse_events(lines)
    assert done
    return chunks


@pytest.mark.parametrize("name, endpoint, body", SAME_AS_SERVER, ids=[c[0] for c in SAME_AS_SERVER])
def test_same_json_as_server(engine, srv, name, endpoint, body):
    # Speculation off: "auto" sizes its guesses by measured step times, so how many tokens one
    # chunk carries (and usage's prediction counts) would depend on timing, not on the code.
    body = {"model": srv.model_id, "speculation": "off", **body}
    ours = engine.run(endpoint, body)
    theirs = server_items(srv, endpoint, body)
    assert normalize(ours) == normalize(theirs)
    if not body.get("stream"):
        assert len(ours) == 1
    else:
        ids = {c["id"] for c in ours}
        assert len(ids) == 1  # one id for the whole stream


BAD_BODIES = [
    (CHAT, '{"messages": ['),
    (CHAT, '{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}'),
    (CHAT, '{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}'),
    (CHAT, '{"model": "m", "messages": [{"role": "user", "content": "x"}], "audio": {}}'),
    (CHAT, '{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 9999}'),
    (CHAT, '{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 99}'),
    (CHAT, '{"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": '
           '{"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}}}'),
    (COMPLETIONS, '{"model": "m", "prompt": 3}'),
    (COMPLETIONS, '{"model": "m", "prompt": "x", "logit_bias": {"99999999": 5}}'),
]


@pytest.mark.parametrize("endpoint, body", BAD_BODIES)
def test_bad_bodies_get_the_servers_error(engine, srv, endpoint, body):
    with pytest.raises(KilnError) as err:
        engine.request(endpoint, body)
    path = "/v1/chat/completions" if endpoint == CHAT else "/v1/completions"
    r = post(srv.base, path, None, raw_body=body.replace('"m"', json.dumps(srv.model_id)).encode())
    assert 400 <= r.status_code < 500
    assert err.value.error == r.json()
    assert err.value.status in (STATUS["INVALID_ARGUMENT"], STATUS["UNIMPLEMENTED"])


def test_speculate_option_reaches_the_engine(lib):
    require(SMOLLM, "default model")
    e = Engine(lib, SMOLLM, {"speculate": "lookup", "draft_max": 4, "context": 512})
    try:
        body = {"prompt": "one two three four, one two three four, one two three four,",
                "max_tokens": 24, "temperature": 0}
        [plain] = e.run(COMPLETIONS, {**body, "speculation": "off"})
        assert e.metrics()["spec_drafted_tokens"] == 0
        [guessed] = e.run(COMPLETIONS, body)
        assert guessed["choices"][0]["text"] == plain["choices"][0]["text"]
        assert e.metrics()["spec_drafted_tokens"] > 0
        assert guessed["usage"]["completion_tokens_details"]["accepted_prediction_tokens"] > 0
    finally:
        e.close()
    with pytest.raises(KilnError) as err:
        Engine(lib, SMOLLM, {"speculate": "sometimes"})
    assert err.value.error["error"]["param"] == "speculate"
    with pytest.raises(KilnError) as err:
        Engine(lib, SMOLLM, {"speculate": "draft", "draft": "/nonexistent/draft.gguf"})
    assert err.value.status == STATUS["NOT_FOUND"]
    assert err.value.error["error"]["param"] == "draft"


def test_draft_model_option(lib):
    """A draft model (the model itself: same vocabulary) guesses; the answer does not change."""
    require(SMOLLM, "default model")
    body = {"prompt": "The history of the printing press", "max_tokens": 16, "temperature": 0}
    e = Engine(lib, SMOLLM, {"speculate": "draft", "draft": str(SMOLLM), "context": 512})
    try:
        [guessed] = e.run(COMPLETIONS, body)
        [plain] = e.run(COMPLETIONS, {**body, "speculation": "off"})
        assert guessed["choices"][0]["text"] == plain["choices"][0]["text"]
        assert e.metrics()["spec_drafted_tokens"] > 0
    finally:
        e.close()
    if GEMMA.exists():  # another vocabulary: refused at load
        with pytest.raises(KilnError) as err:
            Engine(lib, SMOLLM, {"speculate": "draft", "draft": str(GEMMA)})
        assert err.value.status == STATUS["INVALID_ARGUMENT"], err.value.message


def test_model_defaults_to_the_engine(engine):
    [whole] = engine.run(CHAT, {"messages": MSG, "max_tokens": 2})
    assert whole["model"] == "SmolLM2-135M-Instruct.Q4_1" == engine.info()["model_id"]
    [whole] = engine.run(CHAT, {"model": "anything", "messages": MSG, "max_tokens": 2})
    assert whole["model"] == "anything"


def test_concurrent_threads_match_alone(engine):
    bodies = [{"messages": [{"role": "user", "content": f"Count from {i} to {i + 3}."}],
               "max_tokens": 10, "temperature": 0, "stream": True} for i in range(8)]

    def text(items):
        return "".join(c["choices"][0]["delta"].get("content", "") for c in items if c["choices"])

    results = [None] * len(bodies)

    def work(i):
        results[i] = text(engine.run(CHAT, bodies[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    alone = [text(engine.run(CHAT, b)) for b in bodies]
    assert results == alone
    assert len(set(alone)) > 1


def wait_idle(engine, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = engine.metrics()
        if m["running"] == 0 and m["queue_length"] == 0 and \
                m["kv_blocks_used"] == m["kv_blocks_cached"]:
            return m
        time.sleep(0.05)
    raise AssertionError(f"engine not idle: {engine.metrics()}")


def test_cancel_mid_stream_frees_the_sequence(engine):
    req = engine.request(CHAT, {"messages": MSG, "max_tokens": 400, "ignore_eos": True,
                                "stream": True})
    try:
        for _ in range(5):
            assert req.next()[0] == OK
        m = engine.metrics()
        assert m["running"] == 1 and m["kv_blocks_used"] > m["kv_blocks_cached"]
        req.cancel()
        with pytest.raises(KilnError) as err:
            req.next()
        assert err.value.status == STATUS["CANCELLED"]
        wait_idle(engine)
    finally:
        req.close()


def test_timeout_polling(engine):
    req = engine.request(CHAT, {"messages": MSG, "max_tokens": 6, "temperature": 0,
                                "stream": True})
    try:
        statuses, items = [], []
        while True:
            status, item = req.next(timeout_ms=0)
            statuses.append(status)
            if status == DONE:
                break
            if status == OK:
                items.append(json.loads(item))
        assert TIMEOUT in statuses  # a 0 ms poll outran the engine at least once
        assert items[-1]["choices"][0]["finish_reason"] == "length"
    finally:
        req.close()


def test_callback_runner(engine, lib):
    seen = []

    @CALLBACK
    def on_chunk(chunk, _user):
        seen.append(json.loads(chunk))
        return 1 if len(seen) == 3 else 0

    body = json.dumps({"messages": MSG, "max_tokens": 30, "stream": True}).encode()
    assert lib.kiln_engine_run(engine.handle, CHAT, body, on_chunk, None) == STATUS["CANCELLED"]
    assert len(seen) == 3
    wait_idle(engine)


def test_request_outliving_its_engine(lib):
    require(SMOLLM, "default model")
    e = Engine(lib, SMOLLM, {"context": 512})
    req = e.request(CHAT, {"messages": MSG, "max_tokens": 100, "stream": True})
    assert req.next()[0] == OK
    e.close()
    with pytest.raises(KilnError) as err:
        req.next()
    assert err.value.status == STATUS["FAILED_PRECONDITION"]
    req.close()


def test_tokenize_matches_cli(engine):
    require(KILN, "kiln binary")
    text = "Hello, world! <|im_end|> ünïcödé"
    cli = subprocess.run([str(KILN), "tokenize", "-m", str(SMOLLM), "--ids", text],
                         capture_output=True, text=True, check=True).stdout
    assert engine.tokenize(text.encode()) == json.loads(cli)
    special = engine.tokenize(b"<|im_end|>", PARSE_SPECIAL)
    assert len(special) == 1 and engine.detokenize(special) == b"<|im_end|>"
    ids = engine.tokenize(text.encode(), ADD_SPECIAL)
    assert engine.detokenize(ids).endswith(text.encode())
    with pytest.raises(KilnError) as err:
        engine.detokenize([0, engine.info()["n_vocab"]])
    assert err.value.error["error"]["param"] == "ids"


def test_example_chat_streams_the_whole_answer(engine):
    chat = BUILD / "examples" / "c" / "chat"
    require(chat, "examples/c/chat")
    prompt = "Why is the sky blue? Answer in one sentence."
    out = subprocess.run([str(chat), str(SMOLLM), prompt], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    # The example's request, whole: greedy, so the streamed text must be this answer.
    [whole] = engine.run(CHAT, {"messages": [{"role": "user", "content": prompt}],
                                "temperature": 0, "max_tokens": 256})
    assert out == whole["choices"][0]["message"]["content"] + "\n"
    assert len(out) > 20


def test_readme_and_embedding_doc_examples(tmp_path):
    """README's chat command and docs/embedding.md's C program work as printed."""
    require(SMOLLM, "default model")
    readme = (ROOT / "README.md").read_text()
    [command] = re.findall(r"^build/examples/c/chat .*$", readme, flags=re.M)
    argv = shlex.split(command)
    argv[0] = str(BUILD / "examples" / "c" / "chat")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout
    assert len(out.strip()) > 20
    doc = (ROOT / "docs" / "embedding.md").read_text()
    program = re.search(r"```c\n(.*?)```", doc, flags=re.S).group(1)
    (tmp_path / "doc.c").write_text(program)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror",
                    f"-I{ROOT / 'include'}", str(tmp_path / "doc.c"), f"-L{BUILD}", "-lkiln",
                    f"-Wl,-rpath,{BUILD}", "-o", str(tmp_path / "doc")], check=True)
    proc = subprocess.run([str(tmp_path / "doc")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    chunks = [json.loads(line) for line in proc.stdout.splitlines()]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_soak_capi_nothing_lost_nothing_leaked():
    """Issue #22's soak through the C API (bench/soak_capi.py: libkiln.so over ctypes, one OS
    thread per client), 20 s at 8 threads: every request classified, the engine finished exactly
    what it accepted, every KV block free after, no stall, RSS flat after warm-up. The long run
    is the same script."""
    require(LIB_PATH, "libkiln.so")
    default = MODELS / "default.gguf"
    require(default, "default model")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak_capi.py"), "--lib", str(LIB_PATH),
         "-m", str(default), "--mode", "server", "--max-sequences", "8", "--threads", "8",
         "--duration", "20", "--stall-bound", "30", "--rss-slack-mb", "48", "--seed", "1"],
        capture_output=True, text=True, timeout=240)
    assert proc.stdout, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    print(json.dumps({k: summary[k] for k in ("requests", "outcomes", "gap_p99_s", "rss_mb")}))
    assert proc.returncode == 0 and summary["ok"], summary["violations"]
    assert len(summary["scenarios"]) == 8, summary["scenarios"]
    assert summary["outcomes"].get("completed", 0) >= 20, summary["outcomes"]
    assert summary["outcomes"].get("abandoned", 0) >= 2, summary["outcomes"]
    assert summary["engine_finished"] == summary["accepted"]
