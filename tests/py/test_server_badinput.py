"""Hostile and malformed requests: each gets a 4xx with OpenAI's error shape; the server lives on."""

from __future__ import annotations

import json
import socket

import pytest

from test_server_util import get, post, request, running_server, validate

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def srv():
    with running_server("--max-body-mb", "1") as s:
        yield s


def chat(model_id, **fields):
    return {"model": model_id, "messages": MSG, **fields}


def bad_bodies(model: str) -> list[tuple[str, bytes]]:
    """(path, raw body) pairs that must all be rejected with a 4xx."""
    cases: list[tuple[str, object]] = []
    chat_path, cmpl_path = "/v1/chat/completions", "/v1/completions"
    # Broken JSON and wrong top-level types.
    for raw in [b"", b"{", b"}", b"nul", b"[1,2", b'{"model":}', b'{"a":1,}', b"\x00\x01",
                b'{"model":"x" "messages":[]}', b"[]", b"42", b'"str"', b"null", b"true",
                b'{"model":"%s","messages":[{"role":"user","content":"\xff\xfe"}]}' % model.encode(),
                b'{"model":"%s","messages":[{"role":"user","content":"\xc3"}]}' % model.encode(),
                b'{"model":"%s","messages":[{"role":"user","content":"\\ud800"}]}' % model.encode(),
                b"{" * 100000, b"[" * 5000 + b"]" * 5000,
                b'{"model":"%s","messages":%s%s}' % (model.encode(), b"[" * 200, b"]" * 200)]:
        cases.append((chat_path, raw))
        cases.append((cmpl_path, raw))
    # Every sampling field with wrong types and out-of-range values.
    bad_values = {
        "temperature": [-0.1, 2.01, "1", True, [], {}, 1e400, -1e308],
        "top_p": [-1, 1.5, "x", [], 1e300],
        "presence_penalty": [-2.5, 2.5, "0", {}],
        "frequency_penalty": [-3, 3, [1]],
        "max_tokens": [0, -1, -100, 1.5, "10", 2**63, 2**64, 10**30, True, [1], 10**9],
        "max_completion_tokens": [0, -5, "5", 3.3],
        "n": [0, -1, 17, 1000, 1.5, "2", 2**40],
        "stop": [5, [1, 2], ["a"] * 5, "", [""], {"a": 1}, ["x" * 1000]],
        "seed": [1.5, "1", [1], 2**64, -(2**63) - 1],
        "logit_bias": [[], "x", {"abc": 1}, {"1": 101}, {"1": -101}, {"-1": 1}, {"99999999": 1},
                       {"1": "x"}, {"1.5": 1}, {str(i): 1 for i in range(2000)}],
        "logprobs": [1, "true", []],
        "top_k": [-2, 1.5, "5"],
        "min_p": [-0.1, 1.1, "0.5"],
        "repetition_penalty": [0, -1, 100, "1"],
        "min_tokens": [-1, 1.5, "1"],
        "ignore_eos": [1, "yes"],
        "stream": [1, "true", []],
        "user": [1, [], {}],
        "model": [1, None, [], {}],
        "response_format": [{"type": "json_schema", "json_schema": {}}, "json", {}, {"type": 1},
                            {"type": "yaml"}, {"type": "json_schema", "json_schema": []},
                            {"type": "json_schema", "json_schema": {"name": "a b"}},
                            {"type": "json_schema", "json_schema": {"name": "x", "schema": 5}},
                            {"type": "json_schema", "json_schema": {"name": "x", "strict": "y"}},
                            {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                                "type": "object", "properties": {"a": {"not": {}}}}}},
                            {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                                "$ref": "#/$defs/missing"}}},
                            {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                                "type": "string", "pattern": "(unclosed"}}},
                            # A malformed keyword value inside an allOf part (json_schema_fuzz).
                            {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                                "allOf": [{"required": "format"}, {"required": ["foo"]}]}}}],
        "tools": ["x", {}, [1], [{"type": "function"}], [{"type": "retrieval"}],
                  [{"type": "function", "function": {"name": ""}}],
                  [{"type": "function", "function": {"name": "x" * 65}}],
                  [{"type": "function", "function": {"name": "f", "parameters": []}}],
                  [{"type": "function", "function": {"name": "f", "description": 3}}],
                  [{"type": "function", "function": {"name": "f", "parameters": {
                      "type": "object", "properties": {"a": {"uniqueItems": True,
                                                             "type": "array"}}}}}],
                  [{"type": "function", "function": {"name": "f", "parameters": {
                      "type": "object", "properties": {"a": {"type": "integer"}},
                      "required": "a"}}}],
                  [{"type": "function", "function": {"name": "f"}}] * 2],
        "tool_choice": ["auto", "required", {"type": "function"}, 5, "sometimes",
                        {"type": "function", "function": {"name": 1}}],
        "functions": [[{"name": "f"}]],
        "function_call": ["auto"],
        "audio": [{"voice": "x"}],
        "modalities": [["audio"], "text"],
        "best_of": [2, 0],
    }
    chat_only = {"logprobs", "max_completion_tokens", "response_format", "tools", "tool_choice",
                 "functions", "function_call", "audio", "modalities"}
    for field, values in bad_values.items():
        for v in values:
            cases.append((chat_path, chat(model, **{field: v})))
            if field not in chat_only:  # the same fields on the legacy endpoint
                cases.append((cmpl_path, {"model": model, "prompt": "hi", field: v}))
    cases.append((chat_path, chat(model, top_logprobs=3)))  # needs logprobs
    cases.append((chat_path, chat(model, logprobs=True, top_logprobs=21)))
    cases.append((chat_path, chat(model, logprobs=True, top_logprobs=-1)))
    cases.append((chat_path, chat(model, stream_options={"include_usage": True})))  # needs stream
    cases.append((chat_path, chat(model, stream=True, stream_options={"include_usage": "y"})))
    cases.append((chat_path, chat(model, stream=True, stream_options=[])))
    cases.append((chat_path, chat(model, min_tokens=10, max_tokens=5)))
    cases.append((chat_path, chat(model, max_tokens=100000)))  # beyond the context
    cases.append((chat_path, chat("no-such-model")))
    cases.append((chat_path, chat("")))
    # Messages.
    bad_messages = [None, [], {}, "hi", [1], [None], [[]], [{}], [{"role": "user"}],
                    [{"content": "x"}], [{"role": "wizard", "content": "x"}],
                    [{"role": "function", "content": "x", "name": "f"}],
                    [{"role": 1, "content": "x"}], [{"role": "user", "content": 1}],
                    [{"role": "user", "content": None}], [{"role": "user", "content": {}}],
                    [{"role": "user", "content": [1]}], [{"role": "user", "content": [{}]}],
                    [{"role": "user", "content": [{"type": "image_url",
                                                   "image_url": {"url": "http://x"}}]}],
                    [{"role": "user", "content": [{"type": "text"}]}],
                    [{"role": "user", "content": [{"type": "text", "text": 5}]}],
                    [{"role": "user", "content": "x", "name": 5}],
                    [{"role": "tool", "content": "x"}],
                    [{"role": "assistant", "content": None}],
                    [{"role": "assistant", "content": "x", "tool_calls": "x"}],
                    [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}],
                    [{"role": "assistant", "content": None, "tool_calls": [
                        {"id": "c", "function": {"name": "f", "arguments": "{bad"}}]}],
                    [{"role": "assistant", "content": None, "tool_calls": [
                        {"id": 1, "function": {"name": "f", "arguments": "{}"}}]}],
                    [{"role": "user", "content": "hello " * 3000}],  # prompt > context
                    [{"role": "user", "content": "x"}] * 5000]
    for m in bad_messages:
        cases.append((chat_path, {"model": model, "messages": m}))
    cases.append((chat_path, {"messages": MSG}))  # no model
    # Legacy completions prompts.
    for p in [None, 5, [], [[]], ["a", "b"], [1, "a"], [-1], [10**9], [1.5], [[1], [2]], {},
              "word " * 5000, [True]]:
        cases.append((cmpl_path, {"model": model, "prompt": p}))
    for extra in [{"echo": True}, {"suffix": "x"}, {"logprobs": True}, {"logprobs": 21},
                  {"logprobs": -1}, {"max_tokens": 0}, {"n": 0}, {"stop": 3},
                  {"tools": [{"type": "function", "function": {"name": "f"}}]},
                  {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
                   "tools": 1}]:
        cases.append((cmpl_path, {"model": model, "prompt": "hi", **extra}))
    # Tokenize / detokenize.
    for body in [{}, {"prompt": 5}, {"prompt": "x", "add_special_tokens": "y"},
                 {"messages": []}, {"messages": [{"role": "x", "content": "y"}]},
                 {"prompt": "x", "model": "nope"}]:
        cases.append(("/tokenize", body))
    for body in [{}, {"tokens": "x"}, {"tokens": [-1]}, {"tokens": [10**9]}, {"tokens": [1.5]},
                 {"tokens": ["a"]}, [1]]:
        cases.append(("/detokenize", body))
    out = []
    for path, body in cases:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        out.append((path, raw))
    return out


def check_error(r, path):
    assert 400 <= r.status_code < 500, f"{path}: {r.status_code} {r.content[:300]!r}"
    j = r.json()
    validate("ErrorResponse", j)
    assert j["error"]["message"], j


def test_bad_inputs(srv):
    cases = bad_bodies(srv.model_id)
    assert len(cases) >= 250, len(cases)
    statuses = {}
    for path, raw in cases:
        r = request(srv.base, "POST", path, raw_body=raw, timeout=60)
        check_error(r, f"{path} {raw[:120]!r}")
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert srv.alive()
    assert set(statuses) <= {400, 404, 413}, statuses
    print(f"\n{len(cases)} bad requests: {statuses}")
    assert get(srv.base, "/health").status_code == 200
    ok = post(srv.base, "/v1/chat/completions", chat(srv.model_id, max_tokens=3))
    assert ok.status_code == 200, ok.text
    validate("CreateChatCompletionResponse", ok.json())


def test_http_level_errors(srv):
    # Body over --max-body-mb 1 → 413.
    big = b'{"model":"x","messages":[{"role":"user","content":"' + b"a" * (2 << 20) + b'"}]}'
    r = request(srv.base, "POST", "/v1/chat/completions", raw_body=big)
    assert r.status_code == 413
    validate("ErrorResponse", r.json())
    # Unknown routes and methods → 404 in OpenAI's shape.
    for method, path in [("GET", "/v1/nope"), ("POST", "/v1/models"), ("GET", "/v1/chat/completions"),
                         ("DELETE", "/v1/models"), ("GET", "/v1/models/nope")]:
        r = request(srv.base, method, path)
        assert r.status_code in (404, 405), (method, path, r.status_code)
        validate("ErrorResponse", r.json())
    # CORS is off unless --cors.
    r = get(srv.base, "/v1/models", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    # Garbage on the socket, a truncated body, and an abrupt close.
    for payload in [b"GARBAGE\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 10000]:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(4096)
            except OSError:
                pass
    assert srv.alive()
    assert get(srv.base, "/health").status_code == 200
