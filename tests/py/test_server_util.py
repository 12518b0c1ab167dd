"""Shared helpers for the server tests: start `kiln serve` on 127.0.0.1, OpenAI schema checks.

Not a test module by itself (pytest collects nothing here); test_server*.py import it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from kiln_env import KILN, MODELS, ROOT, SMOLLM, require

OPENAPI = ROOT.parent / "shared" / "data" / "openai-openapi" / "openapi.json"
# The default test model: SmolLM2-135M (a chat template, fast on 2 cores). KILN_SERVER_MODEL
# overrides it (e.g. the tiny fixture or default.gguf).
SERVER_MODEL = Path(os.environ.get("KILN_SERVER_MODEL", SMOLLM))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `kiln serve` process on a free local port; stopped with SIGTERM."""

    def __init__(self, *extra: str, model: Path = SERVER_MODEL, timeout: float = 120):
        require(KILN, "kiln binary")
        require(model, "test model")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.model_id = model.name[:-5] if model.name.endswith(".gguf") else model.name
        self.proc = subprocess.Popen(
            [str(KILN), "serve", "-m", str(model), "--port", str(self.port), "--mode", "local",
             "--max-context", "2048", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + timeout
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening on") or self.proc.poll() is not None:
                break
        if not line.startswith("listening on"):
            self.stop()
            raise RuntimeError(f"kiln serve did not start: {line!r}\n{self.proc.stderr.read()[-3000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def running_server(*extra: str, **kw):
    srv = Server(*extra, **kw)
    try:
        yield srv
    finally:
        code = srv.stop()
        assert code == 0, f"kiln serve exited with {code}"


# Module-scoped fixtures shared by the server test modules (import them by name: pytest finds a
# fixture in the module's namespace): one default `kiln serve` per module and an `openai` client.
@pytest.fixture(scope="module")
def srv():
    with running_server() as s:
        yield s


@pytest.fixture(scope="module")
def client(srv):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=srv.base + "/v1", api_key="unused", timeout=300, max_retries=0)


def _convert_nullable(node):
    """OpenAPI's `nullable: true` → JSON Schema's anyOf [..., {"type": "null"}]."""
    if isinstance(node, list):
        return [_convert_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _convert_nullable(v) for k, v in node.items()}
    if node.pop("nullable", False) is True:
        return {"anyOf": [node, {"type": "null"}]}
    return node


_SCHEMAS = None


def schema_validator(name: str):
    """A Draft 2020-12 validator for components/schemas/<name> of OpenAI's OpenAPI document."""
    global _SCHEMAS
    import jsonschema

    if not OPENAPI.exists():
        pytest.skip(f"OpenAI OpenAPI document missing at {OPENAPI}")
    if _SCHEMAS is None:
        with open(OPENAPI, encoding="utf-8") as f:
            _SCHEMAS = _convert_nullable(json.load(f)["components"])
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "components": _SCHEMAS, "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema)


_VALIDATORS: dict = {}


def validate(name: str, instance) -> None:
    if name not in _VALIDATORS:
        _VALIDATORS[name] = schema_validator(name)
    errors = sorted(_VALIDATORS[name].iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{name}: " + "; ".join(
        f"{list(e.path)}: {e.message[:300]}" for e in errors[:5]) + f"\n{json.dumps(instance)[:2000]}"


def sse_events(lines) -> tuple[list[dict], bool]:
    """Parses `data:` events of an SSE body (iterable of lines); returns (chunks, saw [DONE])."""
    chunks, done = [], False
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if not line or line.startswith(":"):
            continue
        assert line.startswith("data: "), f"unexpected SSE line {line!r}"
        assert not done, "data after [DONE]"
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        chunks.append(json.loads(data))
    return chunks, done


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status_code, self.headers, self.content = status, headers, body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    def json(self):
        return json.loads(self.content)


def request(base: str, method: str, path: str, body=None, headers=None, timeout=120,
            raw_body: bytes | None = None) -> Response:
    """One HTTP request with the standard library (the openai client is tested separately)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data,
                 headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    out = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return out


def post(base: str, path: str, body, **kw) -> Response:
    return request(base, "POST", path, body, **kw)


def get(base: str, path: str, **kw) -> Response:
    return request(base, "GET", path, **kw)


def stream_lines(base: str, path: str, body, timeout=120):
    """POSTs and yields (status, content-type) then the SSE body's lines, as they arrive."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.request("POST", path, body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    yield r.status, r.getheader("Content-Type", "")
    try:
        while True:
            line = r.readline()
            if not line:
                break
            yield line.decode("utf-8").rstrip("\n")
    finally:
        conn.close()


def stream(base: str, path: str, body, timeout=120):
    """Returns (status, content_type, chunks, saw_done) of a streaming request."""
    it = stream_lines(base, path, body, timeout)
    status, ctype = next(it)
    if status != 200:
        return status, ctype, [], False
    chunks, done = sse_events(it)
    return status, ctype, chunks, done


def metrics(base: str) -> dict[str, float]:
    out = {}
    for line in get(base, "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
