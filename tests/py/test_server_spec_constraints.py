"""Every constraint OpenAI's spec puts on a request field kiln reads is enforced (#22).

Walks CreateChatCompletionRequest and CreateCompletionRequest in OpenAI's OpenAPI document
($refs resolved, through messages, content parts, tools, tool_choice, response_format, …) and,
for each constraint keyword (minItems/maxItems, minLength/maxLength, enum/const, minimum/maximum
and their exclusive forms, min/maxProperties, uniqueItems), builds a value that breaks it and
sends it in an otherwise valid request to `kiln serve`. A case counts only when jsonschema agrees
the whole request breaks the spec (a constraint inside one branch of an anyOf may be met by
another branch). kiln must answer 400 with `error.param` naming the field (its path or an
enclosing one); 400 `unsupported_parameter` is fine too. A 200 fails the test unless the field
is in IGNORED or the constraint in RELAXED below. A keyword the walk cannot break yet (pattern,
multipleOf, …) fails the test too, so a new one in the spec is noticed.

Each location's unbroken value (the control) is sent too and must be a 200 (or an
unsupported_parameter 400), so that a 400 above is about the broken constraint, not a bad
neighbour.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from test_server_util import OPENAPI, _convert_nullable, post, schema_validator, srv  # noqa: F401

CHAT, COMPLETION = "/v1/chat/completions", "/v1/completions"
REQUEST_SCHEMA = {CHAT: "CreateChatCompletionRequest", COMPLETION: "CreateCompletionRequest"}

# Fields kiln ignores by policy (include/kiln/openai.h, docs/server.md: documented fields that do
# not change kiln's output are ignored, as vLLM does). Their values are not validated at all:
# OpenAI keeps adding enum values to these (service_tier "fast", reasoning_effort "xhigh", …),
# and rejecting a newer client's value for a field kiln never reads would only break it.
# Paths as in `param`, array indices written [].
IGNORED = {
    "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
    "prompt_cache_retention", "prompt_cache_options", "verbosity", "reasoning_effort",
    "moderation",
    # A prompt-caching hint on a text part; kiln's prefix cache needs no hints.
    "messages[].content[].prompt_cache_breakpoint",
    "prediction.content[].prompt_cache_breakpoint",
}

# (endpoint, path, keyword) → why kiln deliberately accepts what the spec rejects.
RELAXED = {
    # Legacy completions cap `logprobs` at 5 alternatives; kiln allows 0..20 as chat's
    # top_logprobs does (and vLLM: up to its max_logprobs). Documented in docs/server.md.
    (COMPLETION, "logprobs", "maximum"): "logprobs 0..20",
}

# Kiln-valid examples for schemas whose JSON Schema is looser than the rules the spec states in
# prose (and kiln enforces): an assistant message needs content unless it has tool_calls, and a
# tool call's arguments are JSON text.
EXAMPLES = {
    "ChatCompletionRequestAssistantMessage": {"role": "assistant", "content": "ok"},
    "ChatCompletionMessageToolCall": {"id": "call_0", "type": "function",
                                      "function": {"name": "f", "arguments": "{}"}},
}

# Fields that only make sense with another one (kiln rejects them alone, as OpenAI does).
COMPANIONS = {
    "top_logprobs": {"logprobs": True},
    "stream_options": {"stream": True},
    "tool_choice": {"tools": [{"type": "function", "function": {"name": "x"}}]},
}

CONSTRAINTS = ("minItems", "maxItems", "minLength", "maxLength", "enum", "const", "minimum",
               "maximum", "exclusiveMinimum", "exclusiveMaximum", "minProperties",
               "maxProperties", "uniqueItems")
NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# Value constraints violations() has no generator for.
UNCHECKED = ("pattern", "multipleOf", "patternProperties", "propertyNames", "contains",
             "minContains", "maxContains", "not", "dependentRequired", "dependentSchemas")


def path_str(path: tuple) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out


def norm(path: tuple) -> str:
    return path_str(tuple(0 if isinstance(s, int) else s for s in path)).replace("[0]", "[]")


@dataclass
class Loc:
    path: tuple                     # where the value sits, as `param` names it
    place: Callable[[Any], dict]    # value → the whole request body
    base: Any                       # a value kiln accepts here


@dataclass
class Case:
    endpoint: str
    path: tuple
    keyword: str
    value: Any
    body: dict
    control: dict


@dataclass
class Walker:
    endpoint: str
    schemas: dict
    cases: list = field(default_factory=list)
    not_violations: int = 0         # broken in one branch, valid through another
    seen_bodies: set = field(default_factory=set)
    unchecked: list = field(default_factory=list)   # "path keyword"

    def __post_init__(self):
        self.request_validator = schema_validator(REQUEST_SCHEMA[self.endpoint])
        self.branch_validators: dict = {}

    # ── schema helpers ──────────────────────────────────────────────────────────────────
    def deref(self, node: dict, stack: tuple) -> tuple[dict, tuple, str | None]:
        """A $ref node → the schema it names merged with its siblings (allOf), or (None, …)
        on a cycle."""
        if "$ref" not in node:
            return node, stack, None
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack:
            return None, stack, name
        target = self.schemas[name]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        merged = {"allOf": [target, rest]} if any(k in rest for k in CONSTRAINTS) else target
        return merged, stack + (name,), name

    def matches(self, schema: dict, value) -> bool:
        key = id(schema)
        if key not in self.branch_validators:
            import jsonschema
            self.branch_validators[key] = (schema, jsonschema.Draft202012Validator(
                {"components": {"schemas": self.schemas}, "allOf": [schema]}))
        return self.branch_validators[key][1].is_valid(value)

    def example(self, node, stack=()):
        """A small value valid under `node` (required properties only); None if none is found."""
        if not isinstance(node, dict):
            return None
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in EXAMPLES:
                return copy.deepcopy(EXAMPLES[name])
            if name in stack:
                return None
            return self.example(self.schemas[name], stack + (name,))
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return node["enum"][0]
        for comb in ("anyOf", "oneOf"):
            if comb in node:
                for branch in node[comb]:
                    ex = self.example(branch, stack)
                    if ex is not None and self.matches(node, ex):
                        return ex
                return None
        if "allOf" in node:
            out: dict = {}
            for part in node["allOf"]:
                ex = self.example(part, stack)
                if isinstance(ex, dict):
                    out.update(ex)
            return out
        t = node.get("type")
        if t == "object" or "properties" in node:
            props = node.get("properties", {})
            return {p: self.example(props.get(p, {}), stack) for p in node.get("required", [])}
        if t == "array":
            item = self.example(node.get("items", {}), stack)
            return [item] * max(1, node.get("minItems", 0)) if item is not None else []
        if t == "string":
            return "x" * max(1, node.get("minLength", 0))
        if t in ("integer", "number"):
            lo, hi = node.get("minimum", -1e300), node.get("maximum", 1e300)
            return min(max(1, lo), hi)  # 1 where allowed (n, logprobs, max_tokens, …)
        if t == "boolean":
            return False
        return None

    # ── violating values ────────────────────────────────────────────────────────────────
    def violations(self, node: dict, keyword: str, base) -> list:
        bound = node[keyword]
        step = 0.001
        if node.get("type") == "integer" and keyword in NUMERIC:
            bound, step = int(bound), 1
        item = base[0] if isinstance(base, list) and base else self.example(node.get("items", {}))
        if keyword == "minItems":
            return [[item] * (bound - 1)] if bound >= 1 else []
        if keyword == "maxItems":
            return [[item] * (bound + 1)]
        if keyword == "minLength":
            return ["x" * (bound - 1)] if bound >= 1 else []
        if keyword == "maxLength":
            return ["x" * (bound + 1)]
        if keyword in ("enum", "const"):
            allowed = bound if keyword == "enum" else [bound]
            if all(isinstance(a, str) for a in allowed):
                return ["kiln-not-" + "-".join(allowed)[:40]]
            return [max(a for a in allowed if isinstance(a, (int, float))) + 1]
        if keyword == "minimum":
            return [bound - step]
        if keyword == "maximum":
            return [bound + step]
        if keyword == "exclusiveMinimum":
            return [bound, bound - step]
        if keyword == "exclusiveMaximum":
            return [bound, bound + step]
        if keyword == "minProperties":
            return [{f"k{i}": v for i, v in enumerate([base] * (bound - 1))}] if bound >= 1 else []
        if keyword == "maxProperties":
            value = self.example(node.get("additionalProperties", {})) or "x"
            return [{f"k{i}": value for i in range(bound + 1)}]
        if keyword == "uniqueItems":
            return [[item, item]] if bound else []
        raise AssertionError(keyword)

    # ── the walk ────────────────────────────────────────────────────────────────────────
    def walk(self, node, loc: Loc, stack=()):
        if not isinstance(node, dict):
            return
        node, stack, _ = self.deref(node, stack)
        if node is None or norm(loc.path) in IGNORED:
            return
        for keyword in CONSTRAINTS:
            if keyword in node:
                self.add_cases(node, keyword, loc)
        self.unchecked += [f"{self.endpoint} {path_str(loc.path)} {k}" for k in UNCHECKED
                           if k in node]
        for part in node.get("allOf", []):
            self.walk(part, loc, stack)
        for comb in ("anyOf", "oneOf"):
            for branch in node.get(comb, []):
                resolved, _, _ = self.deref(branch, stack)
                if resolved is None:
                    continue
                base = loc.base if self.matches(branch, loc.base) else self.example(branch, stack)
                if base is None:
                    continue
                self.walk(branch, Loc(loc.path, loc.place, base), stack)
        base = loc.base if isinstance(loc.base, dict) else self.example(node, stack)
        for prop, sub in node.get("properties", {}).items():
            child = base.get(prop) if isinstance(base, dict) and prop in base else None
            if child is None:
                child = self.example(sub, stack)
            self.walk(sub, Loc(loc.path + (prop,), self.property_place(loc, base, prop), child),
                      stack)
        if isinstance(node.get("items"), dict):
            items_base = loc.base[0] if isinstance(loc.base, list) and loc.base else None
            if items_base is None:
                items_base = self.example(node["items"], stack)
            self.walk(node["items"], Loc(loc.path + (0,), lambda v, loc=loc: loc.place([v]),
                                         items_base), stack)

    def property_place(self, loc: Loc, base, prop):
        def place(v):
            obj = dict(base) if isinstance(base, dict) else {}
            obj[prop] = v
            if not loc.path:  # the request itself: add what this field needs alongside
                for k, extra in COMPANIONS.get(prop, {}).items():
                    obj.setdefault(k, extra)
            return loc.place(obj)
        return place

    def add_cases(self, node: dict, keyword: str, loc: Loc):
        for value in self.violations(node, keyword, loc.base):
            body = loc.place(value)
            key = json.dumps(body, sort_keys=True)
            if key in self.seen_bodies:  # the same field reached through two schema parts
                continue
            self.seen_bodies.add(key)
            if self.request_validator.is_valid(body):
                self.not_violations += 1
                continue
            self.cases.append(Case(self.endpoint, loc.path, keyword, value, body,
                                   loc.place(loc.base)))


def collect(model_id: str) -> tuple[list[Case], list[str]]:
    """The violating requests of both endpoints, and the constraints left unchecked."""
    with open(OPENAPI, encoding="utf-8") as f:
        schemas = _convert_nullable(json.load(f)["components"])["schemas"]
    cases, unchecked = [], []
    for endpoint, root in [
            (CHAT, {"model": model_id, "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 1}),
            (COMPLETION, {"model": model_id, "prompt": "hi", "max_tokens": 1})]:
        walker = Walker(endpoint, schemas)
        walker.walk({"$ref": f"#/components/schemas/{REQUEST_SCHEMA[endpoint]}"},
                    Loc((), lambda body: body, root))
        cases += walker.cases
        unchecked += walker.unchecked
    return cases, unchecked


def names_field(param: str, path: tuple) -> bool:
    """`param` is the field's path or an enclosing one (e.g. "stop" for an item of stop)."""
    want = path_str(path)
    return bool(param) and (want == param or want.startswith(param + ".") or
                            want.startswith(param + "["))


def test_spec_constraints(srv):  # noqa: F811
    if not OPENAPI.exists():
        pytest.skip(f"OpenAI OpenAPI document missing at {OPENAPI}")
    cases, unchecked = collect(srv.model_id)
    assert not unchecked, f"constraints this test cannot break yet: {unchecked}"
    # Controls first: each location's unbroken request must be accepted.
    controls: dict[str, str] = {}
    failures = []
    for c in cases:
        key = c.endpoint + json.dumps(c.control, sort_keys=True)
        if key in controls:
            continue
        r = post(srv.base, c.endpoint, c.control, timeout=120)
        err = r.json().get("error", {}) if r.status_code != 200 else {}
        ok = r.status_code == 200 or (r.status_code == 400 and
                                      err.get("code") == "unsupported_parameter")
        if not ok:
            failures.append(f"control for {path_str(c.path)}: {r.status_code} {r.text[:300]}\n"
                            f"  {json.dumps(c.control)}")
        controls[key] = "unsupported" if err else "ok"
    relaxed, seen = [], set()
    for c in cases:
        where = (c.endpoint, norm(c.path), c.keyword)
        seen.add(where)
        r = post(srv.base, c.endpoint, c.body, timeout=120)
        desc = f"{c.endpoint} {path_str(c.path)} {c.keyword}={json.dumps(c.value)[:60]}"
        if r.status_code == 200:
            if where in RELAXED:
                relaxed.append(desc)
            else:
                failures.append(f"{desc}: accepted (200)")
            continue
        err = r.json().get("error", {})
        if r.status_code != 400:
            failures.append(f"{desc}: HTTP {r.status_code} {err}")
        elif err.get("code") == "unsupported_parameter":
            if not err.get("param") or err["param"].split(".")[0].split("[")[0] != c.path[0]:
                failures.append(f"{desc}: unsupported, but param {err.get('param')!r}")
        elif not names_field(err.get("param") or "", c.path):
            failures.append(f"{desc}: param {err.get('param')!r}, message {err.get('message')!r}")
    stale = set(RELAXED) - seen
    assert not stale, f"RELAXED entries the spec no longer has: {stale}"
    print(f"\n{len(seen)} (field, constraint) pairs, {len(cases)} requests, "
          f"{len(controls)} controls ({sum(v == 'unsupported' for v in controls.values())} "
          f"unsupported), relaxed: {relaxed}")
    assert not failures, "\n".join(failures)
    assert srv.alive()
