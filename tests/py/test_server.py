"""`kiln serve` against the official `openai` client (unmodified) and OpenAI's published schema."""

from __future__ import annotations

import json
import time

import pytest

from kiln_env import kiln
from test_server_util import (SERVER_MODEL, client, get, metrics, post, request,  # noqa: F401
                              running_server, srv, stream, validate)

openai = pytest.importorskip("openai")

MSG = [{"role": "user", "content": "Name three colours."}]


def raw(srv, path, body, **kw):
    return post(srv.base, path, body, **kw)


def test_models(srv, client):
    models = client.models.list()
    assert [m.id for m in models.data] == [srv.model_id]
    body = get(srv.base, "/v1/models").json()
    validate("ListModelsResponse", body)
    assert get(srv.base, "/health").status_code == 200


def test_chat_non_streaming_schema(srv, client):
    body = {"model": srv.model_id, "messages": MSG, "max_tokens": 12, "temperature": 0}
    r = raw(srv, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    j = r.json()
    validate("CreateChatCompletionResponse", j)
    assert j["id"].startswith("chatcmpl-")
    assert j["usage"]["completion_tokens"] == 12
    assert j["choices"][0]["finish_reason"] == "length"
    # The openai client parses the same request the same way (greedy → same text).
    c = client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=12,
                                       temperature=0)
    assert c.choices[0].message.content == j["choices"][0]["message"]["content"]
    assert c.choices[0].message.role == "assistant"
    assert c.usage.prompt_tokens == j["usage"]["prompt_tokens"]


def test_chat_prompt_is_the_template(srv):
    # usage.prompt_tokens must equal the templated prompt's length from `kiln template` +
    # `kiln tokenize --special` (an independent path through the CLI).
    r = raw(srv, "/tokenize", {"messages": MSG})
    ids = r.json()["tokens"]
    j = raw(srv, "/v1/chat/completions", {"model": srv.model_id, "messages": MSG,
                                          "max_tokens": 1}).json()
    assert j["usage"]["prompt_tokens"] == len(ids)


def test_chat_streaming_schema_and_usage(srv, client):
    body = {"model": srv.model_id, "messages": MSG, "max_tokens": 10, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    status, ctype, chunks, done = stream(srv.base, "/v1/chat/completions", body)
    assert status == 200 and ctype.startswith("text/event-stream")
    assert done
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c)
        assert c["id"] == chunks[0]["id"] and c["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 10
    assert all(c["usage"] is None for c in chunks[:-1])
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["length"]
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    # Same text as the non-streaming request and as the openai client's stream.
    once = client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=10,
                                          temperature=0)
    assert text == once.choices[0].message.content
    events = client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=10,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    parts, usage = [], None
    for chunk in events:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            parts.append(ch.delta.content or "")
    assert "".join(parts) == text
    assert usage.completion_tokens == 10 and usage.total_tokens == usage.prompt_tokens + 10


def test_n_choices(srv, client):
    c = client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=8, n=3,
                                       temperature=1.0, seed=7)
    assert [ch.index for ch in c.choices] == [0, 1, 2]
    assert all(ch.finish_reason in ("stop", "length") for ch in c.choices)
    assert 3 <= c.usage.completion_tokens <= 24
    if all(ch.finish_reason == "length" for ch in c.choices):
        assert c.usage.completion_tokens == 24
    body = {"model": srv.model_id, "messages": MSG, "max_tokens": 6, "n": 2, "stream": True}
    status, _, chunks, done = stream(srv.base, "/v1/chat/completions", body)
    assert done
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c)
    finished = sorted(ch["index"] for c in chunks for ch in c["choices"] if ch["finish_reason"])
    assert finished == [0, 1]


def test_seed_reproducible(srv, client):
    def run(seed):
        return client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=16,
                                              temperature=1.0, seed=seed).choices[0].message.content
    a, b = run(1234), run(1234)
    assert a == b
    others = {run(s) for s in (1, 2, 3)}
    assert len(others | {a}) > 1, "different seeds never changed the text"


def test_stop(srv, client):
    full = client.completions.create(model=srv.model_id, prompt="The capital of France is",
                                     max_tokens=16, temperature=0).choices[0].text
    words = full.split()
    assert len(words) >= 3, full
    stop = " " + words[2]
    cut = client.completions.create(model=srv.model_id, prompt="The capital of France is",
                                    max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[:full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_chat_logprobs(srv, client):
    c = client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=5,
                                       temperature=0, logprobs=True, top_logprobs=3)
    content = c.choices[0].logprobs.content
    assert len(content) == c.usage.completion_tokens == 5
    for e in content:
        assert e.logprob <= 0
        assert len(e.top_logprobs) == 3
        lps = [t.logprob for t in e.top_logprobs]
        assert lps == sorted(lps, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert e.top_logprobs[0].token == e.token
        assert abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4
        assert bytes(e.bytes) == e.token.encode("utf-8", "surrogatepass") or "\ufffd" in e.token
    assert "".join(e.token for e in content) == c.choices[0].message.content
    j = raw(srv, "/v1/chat/completions", {"model": srv.model_id, "messages": MSG, "max_tokens": 3,
                                          "logprobs": True, "top_logprobs": 2}).json()
    validate("CreateChatCompletionResponse", j)


def test_completions(srv, client):
    body = {"model": srv.model_id, "prompt": "Once upon a time", "max_tokens": 8,
            "temperature": 0, "logprobs": 2}
    r = raw(srv, "/v1/completions", body)
    assert r.status_code == 200, r.text
    j = r.json()
    validate("CreateCompletionResponse", j)
    assert j["id"].startswith("cmpl-") and j["object"] == "text_completion"
    lp = j["choices"][0]["logprobs"]
    assert "".join(lp["tokens"]) == j["choices"][0]["text"]
    assert lp["text_offset"][0] == 0
    c = client.completions.create(model=srv.model_id, prompt="Once upon a time", max_tokens=8,
                                  temperature=0)
    assert c.choices[0].text == j["choices"][0]["text"]
    # Streaming completions share the response schema.
    body.update(stream=True, stream_options={"include_usage": True})
    status, _, chunks, done = stream(srv.base, "/v1/completions", body)
    assert done
    for ch in chunks:
        if ch["choices"]:
            # The spec shares this schema between responses and chunks, but OpenAI (and every
            # client) sends finish_reason null until a choice ends; check that field apart.
            assert all(x["finish_reason"] in (None, "stop", "length") for x in ch["choices"])
            fixed = json.loads(json.dumps(ch))
            for x in fixed["choices"]:
                x["finish_reason"] = x["finish_reason"] or "length"
            validate("CreateCompletionResponse", fixed)
    text = "".join(x["text"] for ch in chunks for x in ch["choices"])
    assert text == j["choices"][0]["text"]
    assert chunks[-1]["usage"]["completion_tokens"] == 8
    # Token-id prompts.
    ids = raw(srv, "/tokenize", {"prompt": "Once upon a time"}).json()["tokens"]
    j2 = raw(srv, "/v1/completions", {"model": srv.model_id, "prompt": ids, "max_tokens": 8,
                                      "temperature": 0}).json()
    assert j2["choices"][0]["text"] == j["choices"][0]["text"]


def test_error_classes(srv, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=srv.model_id, messages=MSG, temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MSG)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=srv.model_id, messages=MSG,
                                       response_format={"type": "json_schema"})
    assert e.value.body["param"] == "response_format.json_schema"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=srv.model_id, messages=MSG,
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"not": {}}}}])
    assert e.value.body["param"] == "tools[0].function.parameters"
    with pytest.raises(openai.BadRequestError):  # prompt + max_tokens beyond the context
        client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=10**6)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=srv.model_id, prompt="word " * 5000, max_tokens=4)
    r = raw(srv, "/v1/chat/completions", {"model": srv.model_id, "messages": []})
    assert r.status_code == 400
    validate("ErrorResponse", r.json())


def test_api_key():
    with running_server("--api-key", "s3cret") as s:
        bad = openai.OpenAI(base_url=s.base + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=s.base + "/v1", api_key="s3cret", max_retries=0)
        assert good.models.list().data[0].id == s.model_id
        r = post(s.base, "/v1/chat/completions", {})
        assert r.status_code == 401
        validate("ErrorResponse", r.json())
        assert get(s.base, "/health").status_code == 200


def test_tokenize_matches_cli(srv):
    text = "Hello world, kiln <|im_start|>!"
    ours = raw(srv, "/tokenize", {"prompt": text, "add_special_tokens": False}).json()
    cli = json.loads(kiln("tokenize", "-m", str(SERVER_MODEL), "--ids", text).stdout)
    assert ours["tokens"] == cli and ours["count"] == len(cli)
    back = raw(srv, "/detokenize", {"tokens": ours["tokens"]}).json()
    assert back["prompt"] == text


def test_metrics(srv, client):
    client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=2)
    m = metrics(srv.base)
    for name in ("kiln_queue_length", "kiln_running", "kiln_kv_blocks_total",
                 "kiln_prefix_cache_hit_rate", "kiln_generation_tokens_total",
                 'kiln_time_to_first_token_ms_bucket{le="+Inf"}'):
        assert name in m, name
    assert m["kiln_generation_tokens_total"] >= 2
    assert m['kiln_http_responses_total{code="200"}'] >= 1


def test_web_page(srv):
    r = get(srv.base, "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/v1/chat/completions" in r.text and "AbortController" in r.text


def test_non_streaming_disconnect_frees_kv(srv):
    """A client that hangs up on a non-streaming request cancels it; its KV blocks return."""
    import http.client
    import socket

    before = metrics(srv.base)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=1.5)
    body = {"model": srv.model_id, "messages": MSG, "max_tokens": 1500, "ignore_eos": True}
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    with pytest.raises((socket.timeout, TimeoutError)):
        conn.getresponse()  # 1500 tokens take far longer than 1.5 s
    conn.close()
    deadline = time.time() + 20
    m = metrics(srv.base)
    while time.time() < deadline and (m["kiln_running"] or m["kiln_http_requests_in_flight"]):
        time.sleep(0.1)
        m = metrics(srv.base)
    assert m["kiln_running"] == 0 and m["kiln_http_requests_in_flight"] == 0, m
    time.sleep(1.0)
    after = metrics(srv.base)
    generated = after["kiln_generation_tokens_total"] - before["kiln_generation_tokens_total"]
    assert after["kiln_generation_tokens_total"] == m["kiln_generation_tokens_total"]
    assert 0 < generated < 1500, generated
    # Every used block is one only the prefix cache holds (reusable): no sequence holds any.
    assert after["kiln_kv_blocks_used"] == after["kiln_kv_blocks_cached"], after
    assert (after["kiln_http_client_disconnects_total"]
            == before["kiln_http_client_disconnects_total"] + 1)
    assert after['kiln_http_responses_total{code="499"}'] >= 1


def test_metrics_histogram_sums(srv, client):
    client.chat.completions.create(model=srv.model_id, messages=MSG, max_tokens=4)
    text = get(srv.base, "/metrics").text
    m = metrics(srv.base)
    for h in ("kiln_time_to_first_token_ms", "kiln_inter_token_latency_ms"):
        assert f"# TYPE {h} histogram" in text
        count = m[f"{h}_count"]
        assert count >= 1 and m[f'{h}_bucket{{le="+Inf"}}'] == count
        assert m[f"{h}_sum"] > 0
        # The mean must lie between the lowest and highest non-empty buckets' bounds.
        bounds = [float(line.split('le="')[1].split('"')[0]) for line in text.splitlines()
                  if line.startswith(f"{h}_bucket") and "+Inf" not in line]
        cumulative = [m[f'{h}_bucket{{le="{b:g}"}}'] for b in bounds] + [count]
        per_bucket = [c - (cumulative[i - 1] if i else 0) for i, c in enumerate(cumulative)]
        lo = next(i for i, c in enumerate(per_bucket) if c)
        hi = max(i for i, c in enumerate(per_bucket) if c)
        lower = bounds[lo - 1] if lo else 0.0
        upper = bounds[hi] if hi < len(bounds) else float("inf")
        assert lower <= m[f"{h}_sum"] / count <= upper, (h, m[f"{h}_sum"], count, per_bucket)


def test_limits_and_cors():
    """--max-body-mb → 413, n above the limit → 400, --max-concurrent → 429, CORS off by default
    and on with --cors, a too-long prompt → 400 naming the context; the server keeps serving."""
    import threading

    with running_server("--max-body-mb", "1", "--max-concurrent", "1", "--cors") as s:
        r = post(s.base, "/v1/chat/completions", None, raw_body=b" " * (1 << 20 | 1))
        assert r.status_code == 413 and r.json()["error"]["message"]
        r = post(s.base, "/v1/chat/completions", {"model": s.model_id, "messages": MSG, "n": 17})
        assert r.status_code == 400 and r.json()["error"]["param"] == "n"
        r = post(s.base, "/v1/chat/completions",
                 {"model": s.model_id, "messages": MSG, "max_tokens": 2**31})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
        assert get(s.base, "/v1/models").headers.get("access-control-allow-origin") == "*"
        opt = request(s.base, "OPTIONS", "/v1/chat/completions")
        assert opt.status_code == 204 and "POST" in opt.headers["access-control-allow-methods"]
        busy = {}

        def slow():
            busy["r"] = post(s.base, "/v1/chat/completions",
                             {"model": s.model_id, "messages": MSG, "max_tokens": 64,
                              "ignore_eos": True})

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.time() + 30
        while time.time() < deadline and not metrics(s.base)["kiln_http_requests_in_flight"]:
            time.sleep(0.05)
        r = post(s.base, "/v1/chat/completions", {"model": s.model_id, "messages": MSG})
        assert r.status_code == 429 and r.headers["retry-after"] == "1", r.text
        validate("ErrorResponse", r.json())
        t.join(timeout=300)
        assert busy["r"].status_code == 200
    with running_server() as s:
        assert "access-control-allow-origin" not in get(s.base, "/v1/models").headers
