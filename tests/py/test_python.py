"""The `kiln` Python package (python/, issue #8) against the `kiln` CLI and `kiln serve`.

Needs the package installed (`python3 -m pip install .` at the repository root, see
python/README.md); skipped otherwise. Oracles: `kiln run --chat --temp 0 --json` (same engine
through the CLI), the server through the official openai client, and the package's own streaming
vs. non-streaming paths.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from kiln_env import MODELS, kiln_json, require

kiln = pytest.importorskip("kiln")

DEFAULT = MODELS / "default.gguf"
PROMPT = "What is the capital of France?"
MSG = [{"role": "user", "content": PROMPT}]


def settled(engine, timeout=10.0):
    """Metrics once nothing runs or waits (the engine thread updates them after the last event)."""
    deadline = time.time() + timeout
    m = engine.metrics()
    while (m["running"] or m["queue_length"]) and time.time() < deadline:
        time.sleep(0.02)
        m = engine.metrics()
    return m


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(scope="module")
def engine():
    require(DEFAULT, "default model")
    with kiln.Engine("default") as e:
        yield e


def chat_text(engine, **kw):
    r = engine.chat.completions.create(messages=MSG, **kw)
    return r.choices[0].message.content, r


def test_greedy_matches_cli(engine):
    cli = kiln_json("run", "-m", "default", "-p", PROMPT, "--chat", "--temp", "0", "-n", "24",
                    "--json")
    text, r = chat_text(engine, temperature=0, max_tokens=24)
    assert text == cli["text"]
    assert r.usage.prompt_tokens == len(cli["prompt_ids"])
    assert r.usage.completion_tokens == len(cli["output_ids"])
    assert r.choices[0].finish_reason == cli["finish_reason"]
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    if kiln.HAVE_OPENAI:
        from openai.types.chat import ChatCompletion
        assert isinstance(r, ChatCompletion)
    # The prompt is the chat template + special-token tokenization, as `kiln run --chat` builds it.
    templ = engine.apply_chat_template(MSG)
    assert engine.tokenize(templ, parse_special=True) == cli["prompt_ids"]
    assert engine.detokenize(cli["output_ids"]).startswith(text)


def test_stream_concatenates_to_non_stream(engine):
    text, r = chat_text(engine, temperature=0, max_tokens=24)
    chunks = list(engine.chat.completions.create(messages=MSG, temperature=0, max_tokens=24,
                                                 stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [r.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_completions_endpoint(engine):
    r = engine.completions.create(prompt="The capital of France is", temperature=0, max_tokens=8)
    s = "".join(c.choices[0].text for c in engine.completions.create(
        prompt="The capital of France is", temperature=0, max_tokens=8, stream=True))
    assert r.object == "text_completion" and r.choices[0].text == s
    assert r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length"
    ids = engine.tokenize("The capital of France is", add_special=True)
    r2 = engine.completions.create(prompt=ids, temperature=0, max_tokens=8)
    assert r2.choices[0].text == r.choices[0].text


def test_seed_reproducible(engine):
    a, _ = chat_text(engine, temperature=1.0, seed=1234, max_tokens=24)
    b, _ = chat_text(engine, temperature=1.0, seed=1234, max_tokens=24)
    outs = {chat_text(engine, temperature=1.0, seed=s, max_tokens=24)[0] for s in (1, 2, 3, 4)}
    assert a == b
    assert len(outs | {a}) > 1  # the seed matters


def test_models_tokenize_metrics(engine):
    assert [m.id for m in engine.models.list().data] == ["default"]
    ids = engine.tokenize("Hello world")
    assert ids and engine.detokenize(ids) == "Hello world"
    before = settled(engine)["requests_finished"]
    chat_text(engine, temperature=0, max_tokens=2)
    assert settled(engine)["requests_finished"] == before + 1


@pytest.mark.parametrize("kwargs,param", [
    ({"temperature": 3}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"n": 0}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"stop": []}, "stop"),  # the spec's minItems (test_server_spec_constraints.py)
    ({"logit_bias": {"999999999": 1}}, "logit_bias"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"not": {}}}}}}},
     "response_format.json_schema.schema"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"not": {}}}}}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "response_format": {"type": "json_object"}}, "response_format"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"temperature": float("nan")}, None),
    ({"model": 3}, "model"),
    ({"min_tokens": 5, "max_tokens": 2}, "min_tokens"),
])
def test_bad_arguments(engine, kwargs, param):
    with pytest.raises(kiln.BadRequestError) as e:
        engine.chat.completions.create(messages=MSG, **kwargs)
    assert e.value.param == param
    assert isinstance(e.value, ValueError) and e.value.status_code == 400


@pytest.mark.parametrize("messages,param", [
    ([], "messages"),
    ("hi", "messages"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role"),
    ([{"role": "user"}], "messages[0].content"),
    ([{"role": "user", "content": []}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content[0]"),
])
def test_bad_messages(engine, messages, param):
    with pytest.raises(kiln.BadRequestError) as e:
        engine.chat.completions.create(messages=messages)
    assert e.value.param == param


def test_unsupported_fields_name_the_field(engine):
    with pytest.raises(kiln.BadRequestError) as e:
        engine.chat.completions.create(messages=MSG, functions=[{"name": "f"}])
    assert e.value.code == "unsupported_parameter" and e.value.param == "functions"
    with pytest.raises(kiln.BadRequestError):
        engine.completions.create(prompt="x", echo=True)
    with pytest.raises(TypeError):
        kiln.Engine("default", no_such_option=1)


def test_missing_model_raises():
    with pytest.raises(kiln.KilnError):
        kiln.Engine("/nonexistent/model.gguf")


def test_break_cancels_stream(engine):
    stream = engine.chat.completions.create(messages=MSG, temperature=0, max_tokens=200,
                                            stream=True)
    for _ in stream:
        break
    stream.close()
    # The engine is free again: a follow-up request completes, and nothing stays running.
    text, _ = chat_text(engine, temperature=0, max_tokens=4)
    assert text
    m = settled(engine)
    assert m["running"] == 0 and m["queue_length"] == 0


def test_async_concurrent_and_cancel():
    require(DEFAULT, "default model")
    n = 32
    base = os_threads()

    async def one(e, i):
        stream = await e.chat.completions.create(
            messages=[{"role": "user", "content": f"Count to {i % 5 + 2}."}], temperature=0,
            max_tokens=8, stream=True)
        text, reasons = "", []
        async for c in stream:
            text += c.choices[0].delta.content or "" if c.choices else ""
            if c.choices and c.choices[0].finish_reason:
                reasons.append(c.choices[0].finish_reason)
        return text, reasons

    async def main(e):
        results = await asyncio.gather(*(one(e, i) for i in range(n)))
        # Each stream equals the same request made alone (no cross-talk between requests).
        for i, (text, reasons) in enumerate(results[:5]):
            solo = await e.chat.completions.create(
                messages=[{"role": "user", "content": f"Count to {i % 5 + 2}."}], temperature=0,
                max_tokens=8)
            assert text == solo.choices[0].message.content
            assert reasons == [solo.choices[0].finish_reason]
        # Cancellation: leave a long stream after one chunk; the request is freed.
        stream = await e.chat.completions.create(messages=MSG, max_tokens=500, stream=True)
        async for _ in stream:
            break
        await stream.aclose()
        m = await asyncio.to_thread(settled, e)
        assert m["running"] == 0 and m["queue_length"] == 0
        assert m["generated_tokens_total"] < n * 8 + 5 * 8 + 100  # the 500-token stream stopped

    with kiln.AsyncEngine("default") as e:
        asyncio.run(main(e))
    gc.collect()
    assert threading.active_count() == 1 or all(
        not t.name.startswith("kiln-async") for t in threading.enumerate())
    assert os_threads() <= base


def test_speculation_never_changes_the_answer():
    require(DEFAULT, "default model")
    passage = ("The keeper wound the clockwork, trimmed the wick, polished the great lens and "
               "wrote the weather in his log: wind north-west, sea moderate, visibility good.")
    msgs = [{"role": "user", "content": f"Repeat this text exactly:\n\n{passage}"}]
    with kiln.Engine("default", speculate="lookup", draft_max=6) as e:
        for extra in ({"temperature": 0}, {"temperature": 0.8, "top_p": 0.9, "seed": 5}):
            on = e.chat.completions.create(messages=msgs, max_tokens=48, **extra)
            off = e.chat.completions.create(messages=msgs, max_tokens=48, speculation="off",
                                            **extra)
            assert on.choices[0].message.content == off.choices[0].message.content
            assert off.usage.completion_tokens_details.accepted_prediction_tokens == 0
        details = on.usage.completion_tokens_details
        assert details.accepted_prediction_tokens > 0
        assert details.rejected_prediction_tokens >= 0
        m = e.metrics()
        assert m["spec_accepted_tokens"] >= details.accepted_prediction_tokens
        with pytest.raises(kiln.BadRequestError) as err:
            e.chat.completions.create(messages=msgs, speculation="always")
        assert err.value.param == "speculation"
    with pytest.raises(kiln.KilnError):
        kiln.Engine("default", speculate="sometimes")


def test_close_is_clean_and_final():
    require(DEFAULT, "default model")
    base = os_threads()
    e = kiln.Engine("default")
    assert os_threads() >= base
    stream = e.chat.completions.create(messages=MSG, max_tokens=50, stream=True)
    next(iter(stream))
    e.close()
    list(stream)  # ends (abort) instead of hanging
    e.close()  # idempotent
    with pytest.raises(kiln.BadRequestError):
        e.chat.completions.create(messages=MSG)
    del e, stream
    gc.collect()
    assert os_threads() == base


def test_same_output_as_server_with_openai_client(engine):
    openai = pytest.importorskip("openai")
    from kiln_env import KILN
    from test_server_util import running_server
    require(KILN, "kiln binary")
    if subprocess.run([str(KILN), "serve", "--help"], capture_output=True).returncode != 0:
        pytest.skip("this kiln binary has no `serve` command yet")
    with running_server(model=DEFAULT) as srv:
        client = openai.OpenAI(base_url=srv.base + "/v1", api_key="unused", timeout=120,
                               max_retries=0)
        for kw in ({"temperature": 0, "max_tokens": 16}, {"temperature": 0.9, "seed": 7, "max_tokens": 16}):
            want = client.chat.completions.create(model=srv.model_id, messages=MSG, **kw)
            got = engine.chat.completions.create(messages=MSG, **kw)
            assert got.choices[0].message.content == want.choices[0].message.content
            assert got.usage.prompt_tokens == want.usage.prompt_tokens
            assert got.usage.completion_tokens == want.usage.completion_tokens


def test_python_m_kiln_run(engine):
    import json
    import sys
    proc = subprocess.run([sys.executable, "-m", "kiln", "run", "-p", PROMPT, "--chat", "--temp",
                           "0", "-n", "24", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    text, r = chat_text(engine, temperature=0, max_tokens=24)
    assert out["text"] == text and out["completion_tokens"] == r.usage.completion_tokens


# ── Structured output and tools (#7): the same request parser and tool code as the server ──

WEATHER = {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 24},
                          "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ASK = [{"role": "user", "content": "What is the weather like in Paris today?"}]


def _reassemble(chunks):
    calls = {}
    for c in chunks:
        for choice in c.choices:
            for d in choice.delta.tool_calls or []:
                if d.index not in calls:
                    assert d.id.startswith("call_") and d.type == "function"
                    assert d.function.name and d.function.arguments == ""
                    calls[d.index] = [d.function.name, ""]
                else:
                    assert d.id is None and d.function.name is None
                    calls[d.index][1] += d.function.arguments
    return [tuple(calls[i]) for i in sorted(calls)]


def test_response_format_json_schema(engine):
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"type": "object", "properties": {
        "name": {"enum": ["Paris", "Rome"]}, "rank": {"type": "integer", "minimum": 1,
                                                      "maximum": 9}},
        "required": ["name", "rank"], "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema,
                                                 "strict": True}}
    r = engine.chat.completions.create(messages=MSG, response_format=rf, temperature=0,
                                       max_tokens=120)
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(__import__("json").loads(r.choices[0].message.content), schema)
    chunks = list(engine.chat.completions.create(messages=MSG, response_format=rf, temperature=0,
                                                 max_tokens=120, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == r.choices[0].message.content
    obj = engine.chat.completions.create(messages=MSG, response_format={"type": "json_object"},
                                         temperature=0.7, seed=2, max_tokens=150)
    if obj.choices[0].finish_reason == "stop":
        assert isinstance(__import__("json").loads(obj.choices[0].message.content), dict)
    else:
        assert obj.choices[0].message.content.startswith("{")


def test_tool_envelope_cut_by_max_tokens_same_stream_and_not(engine):
    # Cut short: content None and the calls opened so far, "length" — as the stream sent it.
    kw = dict(messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=24)
    r = engine.chat.completions.create(**kw)
    choice = r.choices[0]
    assert choice.finish_reason == "length" and choice.message.content is None
    want = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    assert want, "24 tokens open the first call's arguments"
    chunks = list(engine.chat.completions.create(**kw, stream=True))
    assert _reassemble(chunks) == want
    assert [c.choices[0].finish_reason for c in chunks if c.choices and
            c.choices[0].finish_reason] == ["length"]


def test_tool_calls_stream_and_round_trip(engine):
    import json
    jsonschema = pytest.importorskip("jsonschema")
    r = engine.chat.completions.create(messages=ASK, tools=TOOLS, tool_choice="required",
                                       parallel_tool_calls=False, temperature=0, max_tokens=150)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert calls and all(c.id.startswith("call_") and c.type == "function" for c in calls)
    for c in calls:
        assert c.function.name == "get_weather"
        jsonschema.validate(json.loads(c.function.arguments), WEATHER)
    if kiln.HAVE_OPENAI:
        from openai.types.chat import ChatCompletion
        assert isinstance(r, ChatCompletion)
    chunks = list(engine.chat.completions.create(messages=ASK, tools=TOOLS,
                                                 tool_choice="required", temperature=0,
                                                 parallel_tool_calls=False, max_tokens=150,
                                                 stream=True))
    assert _reassemble(chunks) == [(c.function.name, c.function.arguments) for c in calls]
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == \
        ["tool_calls"]
    # Round trip: the previous message object and the tool results go back in.
    history = ASK + [choice.message] + [
        {"role": "tool", "tool_call_id": c.id, "content": "sunny, 21 C"} for c in calls]
    again = engine.chat.completions.create(messages=history, tools=TOOLS, tool_choice="none",
                                           temperature=0, max_tokens=24)
    assert again.choices[0].message.content and again.choices[0].message.tool_calls is None
    named = engine.chat.completions.create(
        messages=ASK, tools=TOOLS, parallel_tool_calls=False, temperature=0.8, seed=4,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=150)
    assert len(named.choices[0].message.tool_calls) == 1


def test_tools_same_as_server(engine):
    openai = pytest.importorskip("openai")
    from kiln_env import KILN
    from test_server_util import running_server
    require(KILN, "kiln binary")
    with running_server(model=DEFAULT) as srv:
        client = openai.OpenAI(base_url=srv.base + "/v1", api_key="unused", timeout=300,
                               max_retries=0)
        for kw in ({"tool_choice": "required", "temperature": 0},
                   {"tool_choice": "auto", "temperature": 0.9, "seed": 5}):
            want = client.chat.completions.create(model=srv.model_id, messages=ASK, tools=TOOLS,
                                                  max_tokens=150, **kw).choices[0]
            got = engine.chat.completions.create(messages=ASK, tools=TOOLS, max_tokens=150,
                                                 **kw).choices[0]
            assert got.finish_reason == want.finish_reason
            assert got.message.content == want.message.content
            strip = lambda calls: [(c.function.name, c.function.arguments) for c in calls or []]
            assert strip(got.message.tool_calls) == strip(want.message.tool_calls)


def test_soak_async_engine_nothing_lost_nothing_leaked():
    """Issue #22's soak through the Python API (bench/soak_python.py), 30 s at 8 tasks: every
    request classified, the engine finished exactly what it accepted, every KV block free after,
    no stall, RSS flat after warm-up. The hour at 64 tasks is the same script."""
    require(DEFAULT, "default model")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, os.path.join(root, "bench", "soak_python.py"), "-m", str(DEFAULT),
         "--mode", "server", "--max-sequences", "8", "--tasks", "8", "--duration", "30",
         "--stall-bound", "30", "--rss-slack-mb", "48", "--seed", "1"],
        capture_output=True, text=True, timeout=240)
    assert proc.stdout, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    print(json.dumps({k: summary[k] for k in ("requests", "outcomes", "gap_p99_s", "rss_mb")}))
    assert proc.returncode == 0 and summary["ok"], summary["violations"]
    assert len(summary["scenarios"]) == 8, summary["scenarios"]
    assert summary["outcomes"].get("completed", 0) >= 30, summary["outcomes"]
    assert summary["outcomes"].get("abandoned", 0) >= 2, summary["outcomes"]
