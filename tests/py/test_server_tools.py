"""Structured output and tool calling through `kiln serve` (#7), driven by the official `openai`
client: chat.completions.parse with pydantic models (stream and not), json_object and
json_schema outputs validated with `jsonschema`, tool calls (required / named / auto, parallel
or not) whose arguments validate against the tool's schema, the round trip with tool results,
streamed tool-call deltas, and 400s naming the field. Every body and chunk is validated against
OpenAI's OpenAPI schema. The same checks through kiln.Engine are in test_python.py.
"""

from __future__ import annotations

import json
from typing import List, Literal

import pytest

from test_server_util import client, post, srv, stream, validate  # noqa: F401 (fixtures)

jsonschema = pytest.importorskip("jsonschema")
openai = pytest.importorskip("openai")
pydantic = pytest.importorskip("pydantic")

CHAT = "/v1/chat/completions"

WEATHER = {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 24},
                          "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TIME = {"type": "object",
        "properties": {"timezone": {"type": "string", "pattern": "^[A-Z]{3}$"}},
        "required": ["timezone"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description":
                                           "Current weather in a city", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "description":
                                           "Current time in a timezone", "parameters": TIME}}]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather like in Paris today?"}]


class City(pydantic.BaseModel):
    name: Literal["Paris", "London", "Tokyo", "Rome"]
    country: Literal["France", "UK", "Japan", "Italy"]
    population_millions: int = pydantic.Field(ge=0, le=50)
    landmarks: List[Literal["Eiffel Tower", "Big Ben", "Colosseum", "Louvre"]] = \
        pydantic.Field(max_length=3)


def chat_ok(srv, **fields):
    r = post(srv.base, CHAT, {"model": srv.model_id, **fields}, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    validate("CreateChatCompletionResponse", body)
    return body


def chat_stream(srv, **fields):
    status, _, chunks, done = stream(srv.base, CHAT, {"model": srv.model_id, "stream": True,
                                                      **fields}, timeout=300)
    assert status == 200 and done
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c)
    return chunks


def assert_calls_valid(calls, allowed=("get_weather", "get_time")):
    assert calls, "no tool calls"
    for c in calls:
        assert c["type"] == "function" and c["id"].startswith("call_") and len(c["id"]) == 29
        assert c["function"]["name"] in allowed
        args = json.loads(c["function"]["arguments"])
        jsonschema.validate(args, SCHEMAS[c["function"]["name"]])
    assert len({c["id"] for c in calls}) == len(calls)


def reassemble(chunks, index=0):
    """OpenAI-streamed tool-call deltas of choice `index` → [{"id", "type", "function": {"name",
    "arguments"}}]."""
    calls: dict[int, dict] = {}
    for c in chunks:
        for choice in c["choices"]:
            if choice["index"] != index:
                continue
            for d in choice["delta"].get("tool_calls") or []:
                if d["index"] not in calls:
                    # The first delta of a call opens it: id, type, name, empty arguments.
                    assert d["id"].startswith("call_") and d["type"] == "function"
                    assert d["function"]["name"] and d["function"]["arguments"] == ""
                    calls[d["index"]] = {"id": d["id"], "type": "function",
                                         "function": {"name": d["function"]["name"],
                                                      "arguments": ""}}
                else:
                    assert "id" not in d and "name" not in d["function"]
                    calls[d["index"]]["function"]["arguments"] += d["function"]["arguments"]
    assert sorted(calls) == list(range(len(calls)))
    return [calls[i] for i in sorted(calls)]


# ── response_format ──────────────────────────────────────────────────────────────────────────

def test_parse_pydantic_model(client, srv):
    raw = client.chat.completions.with_raw_response.parse(
        model=srv.model_id, messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format=City, temperature=0, max_tokens=300)
    validate("CreateChatCompletionResponse", raw.http_response.json())
    r = raw.parse()
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "stop", msg.content
    assert isinstance(msg.parsed, City)
    assert City.model_validate_json(msg.content) == msg.parsed


def test_parse_pydantic_model_streaming(client, srv):
    with client.chat.completions.stream(
            model=srv.model_id, messages=[{"role": "user", "content": "Describe Rome as JSON."}],
            response_format=City, temperature=0.7, seed=3, max_tokens=300) as s:
        deltas = [e.delta for e in s if e.type == "content.delta"]
        final = s.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    parsed = final.choices[0].message.parsed
    assert isinstance(parsed, City)
    assert "".join(deltas) == final.choices[0].message.content


@pytest.mark.parametrize("streaming", [False, True])
def test_json_object_mode(srv, streaming):
    fields = dict(messages=[{"role": "user", "content": "Give me a JSON object about a cat."}],
                  response_format={"type": "json_object"}, temperature=0.8, seed=11,
                  max_tokens=200)
    if streaming:
        chunks = chat_stream(srv, **fields)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                       if c["choices"])
        reason = [c["choices"][0]["finish_reason"] for c in chunks
                  if c["choices"] and c["choices"][0]["finish_reason"]][-1]
    else:
        body = chat_ok(srv, **fields)
        text, reason = body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"]
    if reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: a prefix of an object, never prose
        assert reason == "length" and text.startswith("{")


SCHEMA_CASES = {
    "nested": {"type": "object", "properties": {
        "user": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 16},
            "age": {"type": "integer", "minimum": 0, "maximum": 120}},
            "required": ["name", "age"], "additionalProperties": False},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1,
                 "maxItems": 3}},
        "required": ["user", "tags"], "additionalProperties": False},
    "formats": {"type": "object", "properties": {
        "day": {"type": "string", "format": "date"},
        "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
        "ok": {"type": "boolean"}, "note": {"type": ["string", "null"], "maxLength": 10}},
        "required": ["day", "code", "ok", "note"], "additionalProperties": False},
    "recursive": {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v", "kids"], "additionalProperties": False}},
        "$ref": "#/$defs/node"},
}


@pytest.mark.parametrize("name", sorted(SCHEMA_CASES))
def test_json_schema_outputs_validate(srv, name):
    schema = SCHEMA_CASES[name]
    body = chat_ok(srv, messages=[{"role": "user", "content": "Reply with JSON."}],
                   response_format={"type": "json_schema",
                                    "json_schema": {"name": name, "schema": schema,
                                                    "strict": True}},
                   temperature=0.9, seed=5, max_tokens=400)
    choice = body["choices"][0]
    if name == "recursive" and choice["finish_reason"] == "length":
        # A sampled tree may nest past max_tokens (nothing in the schema bounds its depth; this
        # small model likes to nest): then the answer must have used every token, and a request
        # that asks for a small tree must close it.
        assert body["usage"]["completion_tokens"] == 400, body["usage"]
        body = chat_ok(srv, messages=[{"role": "user", "content":
                                       'Reply with JSON: the tree {"v": 1, "kids": []}.'}],
                       response_format={"type": "json_schema",
                                        "json_schema": {"name": name, "schema": schema,
                                                        "strict": True}},
                       temperature=0, max_tokens=400)
        choice = body["choices"][0]
    assert choice["finish_reason"] == "stop", choice["message"]["content"]
    jsonschema.validate(json.loads(choice["message"]["content"]), schema)


# ── tools ────────────────────────────────────────────────────────────────────────────────────

def test_tool_choice_required(srv):
    body = chat_ok(srv, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0,
                   max_tokens=200)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert_calls_valid(choice["message"]["tool_calls"])


def test_tool_choice_named_and_not_parallel(srv):
    for seed in (1, 2):
        body = chat_ok(srv, messages=ASK, tools=TOOLS, parallel_tool_calls=False,
                       tool_choice={"type": "function", "function": {"name": "get_time"}},
                       temperature=1.0, seed=seed, max_tokens=200)
        calls = body["choices"][0]["message"]["tool_calls"]
        assert len(calls) == 1
        assert_calls_valid(calls, allowed=("get_time",))


def test_parallel_calls_stream_and_not(srv):
    fields = dict(messages=[{"role": "user", "content":
                             "Weather in Paris and in Tokyo, and the time in CET?"}],
                  tools=TOOLS, tool_choice="required", parallel_tool_calls=True,
                  temperature=0, max_tokens=300)
    body = chat_ok(srv, **fields)
    calls = body["choices"][0]["message"]["tool_calls"]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert_calls_valid(calls)
    # Greedy, this model makes several calls in one answer.
    assert len(calls) > 1
    got = reassemble(chat_stream(srv, **fields))
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in got] == \
        [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
    # Several choices: each one a valid set of calls.
    for choice in chat_ok(srv, **{**fields, "n": 3, "temperature": 0.9, "seed": 9})["choices"]:
        assert choice["finish_reason"] == "tool_calls"
        assert_calls_valid(choice["message"]["tool_calls"])


def test_tool_choice_auto_both_branches(srv):
    brace = post(srv.base, "/tokenize", {"prompt": "{", "add_special_tokens": False}).json()
    assert brace["count"] == 1
    brace_id = str(brace["tokens"][0])
    # Pushed towards '{' (a bias that holds at every position, so the tool takes no strings
    # and one call): after the first '{' the envelope is the only way on: a valid call.
    unit = {"type": "object", "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["unit"], "additionalProperties": False}
    body = chat_ok(srv, messages=ASK, tool_choice="auto", temperature=0, max_tokens=200,
                   tools=[{"type": "function", "function": {"name": "get_weather",
                                                            "parameters": unit}}],
                   parallel_tool_calls=False, logit_bias={brace_id: 100})
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    calls = body["choices"][0]["message"]["tool_calls"]
    assert len(calls) == 1 and calls[0]["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(calls[0]["function"]["arguments"]), unit)
    # Pushed away from '{': plain text, no calls.
    body = chat_ok(srv, messages=ASK, tools=TOOLS, tool_choice="auto", temperature=0,
                   max_tokens=30, logit_bias={brace_id: -100})
    msg = body["choices"][0]["message"]
    assert "tool_calls" not in msg and isinstance(msg["content"], str) and msg["content"]
    assert not msg["content"].startswith("{")


def test_streamed_tool_calls_reassemble(srv):
    fields = dict(messages=ASK, tools=TOOLS, tool_choice="required", temperature=0,
                  max_tokens=200)
    want = chat_ok(srv, **fields)["choices"][0]["message"]["tool_calls"]
    chunks = chat_stream(srv, stream_options={"include_usage": True}, **fields)
    got = reassemble(chunks)
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in got] == \
        [(c["function"]["name"], c["function"]["arguments"]) for c in want]
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [r for r in reasons if r] == ["tool_calls"]
    assert all("content" not in c["choices"][0]["delta"] or c["choices"][0]["delta"]["content"]
               in ("", None) for c in chunks if c["choices"])


@pytest.mark.parametrize("max_tokens", [6, 24])
def test_envelope_cut_by_max_tokens_same_stream_and_not(srv, max_tokens):
    # An envelope cut short: a tool-call answer either way (content null), the calls opened so
    # far with the arguments generated, finish_reason "length" — what the stream already sent.
    fields = dict(messages=ASK, tools=TOOLS, tool_choice="required", temperature=0,
                  max_tokens=max_tokens)
    choice = chat_ok(srv, **fields)["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] is None
    want = choice["message"].get("tool_calls") or []
    chunks = chat_stream(srv, **fields)
    got = reassemble(chunks)
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in got] == \
        [(c["function"]["name"], c["function"]["arguments"]) for c in want]
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [r for r in reasons if r] == ["length"]
    if max_tokens == 24:
        assert want, "24 tokens open the first call's arguments"


def test_round_trip_with_openai_client(client, srv):
    first = client.chat.completions.create(model=srv.model_id, messages=ASK, tools=TOOLS,
                                           tool_choice="required", temperature=0, max_tokens=200)
    msg = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and msg.tool_calls
    history = list(ASK) + [msg]
    for call in msg.tool_calls:
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
        history.append({"role": "tool", "tool_call_id": call.id,
                        "content": json.dumps({"result": "sunny, 21 C", "ok": True})})
    for choice in ("none", "auto"):
        raw = client.chat.completions.with_raw_response.create(
            model=srv.model_id, messages=history, tools=TOOLS, tool_choice=choice,
            temperature=0, max_tokens=120)
        validate("CreateChatCompletionResponse", raw.http_response.json())
        out = raw.parse().choices[0]
        if choice == "none":
            assert out.message.tool_calls is None and out.message.content
            assert out.finish_reason in ("stop", "length")
        elif out.finish_reason == "tool_calls":
            assert_calls_valid([c.model_dump() for c in out.message.tool_calls])
        elif out.message.content.startswith("{"):  # an envelope cut by max_tokens
            assert out.finish_reason == "length" and out.message.content.startswith('{')
        else:
            assert out.message.content and out.finish_reason in ("stop", "length")


def test_openai_stream_helper_parses_tool_arguments(client, srv):
    class GetWeather(pydantic.BaseModel):
        city: Literal["Paris", "London"]
        unit: Literal["celsius", "fahrenheit"]

    with client.chat.completions.stream(
            model=srv.model_id, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)],
            tool_choice="required", parallel_tool_calls=False, temperature=0,
            max_tokens=200) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls" and calls
    assert all(isinstance(c.function.parsed_arguments, GetWeather) for c in calls)


# ── errors ───────────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("fields,param,words", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"not": {"type": "string"}}}}}}]},
     "tools[0].function.parameters", ["not"]),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", ["nope"]),
    ({"tool_choice": "required"}, "tool_choice", []),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"type": "string", "contentEncoding": "x",
                                               "if": {"type": "string"}}}}}}},
     "response_format.json_schema.schema", ["if"]),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
     "response_format.json_schema.name", []),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]},
     "tools[0].function.name", []),
    ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format", []),
])
def test_errors_name_the_field(srv, fields, param, words):
    r = post(srv.base, CHAT, {"model": srv.model_id, "messages": ASK, **fields})
    assert r.status_code == 400, r.text
    err = r.json()
    validate("ErrorResponse", err)
    assert err["error"]["param"] == param, err
    for w in words:
        assert f"'{w}'" in err["error"]["message"], err
    assert chat_ok(srv, messages=ASK, max_tokens=2)["choices"]  # the server keeps serving


def ambiguous_pattern(levels: int = 30) -> str:
    """(((a+b?)+b?)+b?)...: every level may repeat or return, so the ways to parse a run of
    a's grow exponentially with the nesting (a hostile grammar, not mergeable at parse time)."""
    p = "a"
    for _ in range(levels):
        p = f"({p}+b?)"
    return f"^{p}$"


@pytest.mark.parametrize("where", ["response_format", "tools"])
def test_too_ambiguous_schema_is_a_fast_400(srv, where):
    schema = {"type": "object", "properties": {"s": {"type": "string",
                                                     "pattern": ambiguous_pattern()}}}
    if where == "tools":
        fields = {"tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
                  "tool_choice": "required"}
        param = "tools"  # the tools' combined grammar is what is too ambiguous
    else:
        fields = {"response_format": {"type": "json_schema",
                                      "json_schema": {"name": "x", "schema": schema}}}
        param = "response_format.json_schema.schema"
    r = post(srv.base, CHAT, {"model": srv.model_id, "messages": ASK, "max_tokens": 20, **fields},
             timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()
    validate("ErrorResponse", err)
    assert err["error"]["param"] == param, err
    assert "grammar too ambiguous" in err["error"]["message"], err
    assert chat_ok(srv, messages=ASK, max_tokens=2)["choices"]  # the server keeps serving


def test_openai_client_raises_bad_request(client, srv):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=srv.model_id, messages=ASK, tools=TOOLS,
                                       tool_choice={"type": "function",
                                                    "function": {"name": "missing"}})
    assert e.value.status_code == 400 and e.value.body["param"] == "tool_choice"


def test_completions_endpoint_response_format(srv):
    r = post(srv.base, "/v1/completions", {"model": srv.model_id, "prompt": "A JSON object:",
                                           "response_format": {"type": "json_object"},
                                           "max_tokens": 120, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    validate("CreateCompletionResponse", body)
    c = body["choices"][0]
    if c["finish_reason"] == "stop":
        assert isinstance(json.loads(c["text"]), dict)
    else:
        assert c["text"].startswith("{")
