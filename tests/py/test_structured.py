"""Structured generation end to end (#7): `kiln run --json-schema / --grammar / --json-object`.

Every output must parse and validate with the reference `jsonschema` library (formats checked
with its FormatChecker), or match the grammar's language checked by Python's `re` / a counter;
an output that stops for length must be a valid prefix (checked by the JSON-prefix scanner
below, written from RFC 8259, not from kiln's grammar). Runs the default model (greedy and
sampled, several seeds) and the random tiny models of tests/testdata/tiny (whose outputs are
arbitrary walks of the grammar, so they reach corners a real model avoids).
"""
from __future__ import annotations

import json
import re

import pytest

from kiln_env import MODELS, ROOT, kiln, require
from schema_cases import closed_object, tree

jsonschema = pytest.importorskip("jsonschema")

TINY = ROOT / "tests" / "testdata" / "tiny"
TINY_MODELS = ["llama3_tied", "qwen2", "gemma3", "mistral"]
DEFAULT = MODELS / "default.gguf"

SCHEMAS = {
    "nested": closed_object({
        "name": {"type": "string", "maxLength": 24},
        "address": closed_object({"city": {"type": "string", "maxLength": 20},
                                  "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}),
        "active": {"type": "boolean"},
    }),
    "array_bounds": closed_object({
        "scores": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 100},
                   "minItems": 2, "maxItems": 4},
        "pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 6},
                                                  {"type": "boolean"}],
                 "items": False, "minItems": 2},
    }),
    "enums": closed_object({
        "color": {"enum": ["red", "green", "blue"]},
        "size": {"enum": [1, 2, 3, None]},
        "kind": {"const": "shirt"},
    }),
    "recursive": tree({"type": "integer", "minimum": -9, "maximum": 9}),
    "patterns": closed_object({
        "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
        "slug": {"type": "string", "pattern": "^[a-z]+(-[a-z]+){0,2}$"},
    }),
    "formats": closed_object({
        "day": {"type": "string", "format": "date"},
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string", "format": "email"},
    }),
    "integers": closed_object({
        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
        "delta": {"type": "integer", "exclusiveMinimum": -50, "exclusiveMaximum": 50},
        "count": {"type": "integer", "minimum": 0},
        "ratio": {"type": ["number", "null"]},
    }),
}

PROMPTS = {
    "nested": "Describe a person named Ana who lives in Paris as JSON.",
    "array_bounds": "Give some test scores and a pair as JSON.",
    "enums": "Describe a t-shirt as JSON.",
    "recursive": "Write a small tree of numbers as JSON.",
    "patterns": "Give a product code and a slug as JSON.",
    "formats": "Return JSON with the date 2024-05-01, a random UUID and the email ana@example.com.",
    "integers": "Give a year, a delta, a count and a ratio as JSON.",
}


# ---- oracle helpers -------------------------------------------------------------------------

class _Incomplete(Exception):
    pass


class _Bad(Exception):
    pass


class _JsonPrefix:
    """Recursive-descent JSON scanner (RFC 8259) that reports running out of input separately
    from a syntax error: is_prefix(s) is true iff some continuation makes s a JSON text."""

    WS = " \t\n\r"

    def __init__(self, s: str):
        self.s, self.i = s, 0

    def peek(self) -> str:
        if self.i >= len(self.s):
            raise _Incomplete
        return self.s[self.i]

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in self.WS:
            self.i += 1

    def value(self):
        self.ws()
        c = self.peek()
        if c == "{":
            self.container("}", self.member)
        elif c == "[":
            self.container("]", self.value)
        elif c == '"':
            self.string()
        elif c in "-0123456789":
            self.number()
        else:
            for lit in ("true", "false", "null"):
                rest = self.s[self.i:self.i + len(lit)]
                if lit.startswith(rest) and rest:
                    if len(rest) < len(lit):
                        raise _Incomplete
                    self.i += len(lit)
                    return
            raise _Bad(f"unexpected {c!r} at {self.i}")

    def container(self, close, item):
        self.i += 1
        self.ws()
        if self.peek() == close:
            self.i += 1
            return
        while True:
            item()
            self.ws()
            c = self.peek()
            self.i += 1
            if c == close:
                return
            if c != ",":
                raise _Bad(f"expected ',' or {close!r} at {self.i - 1}")

    def member(self):
        self.ws()
        if self.peek() != '"':
            raise _Bad(f"expected a key at {self.i}")
        self.string()
        self.ws()
        if self.peek() != ":":
            raise _Bad(f"expected ':' at {self.i}")
        self.i += 1
        self.value()

    def string(self):
        self.i += 1
        while True:
            c = self.peek()
            self.i += 1
            if c == '"':
                return
            if c == "\\":
                e = self.peek()
                self.i += 1
                if e == "u":
                    for _ in range(4):
                        if self.peek() not in "0123456789abcdefABCDEF":
                            raise _Bad("bad \\u escape")
                        self.i += 1
                elif e not in '"\\/bfnrt':
                    raise _Bad(f"bad escape \\{e}")
            elif ord(c) < 0x20:
                raise _Bad("control character in a string")

    def number(self):
        m = re.compile(r"-?(0|[1-9][0-9]*)?(\.[0-9]*)?([eE][+-]?[0-9]*)?").match(self.s, self.i)
        text = m.group(0)
        self.i = m.end()
        if self.i == len(self.s):
            return  # may continue
        if not re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", text):
            raise _Bad(f"bad number {text!r}")


def is_json_prefix(s: str) -> bool:
    p = _JsonPrefix(s)
    try:
        p.value()
    except _Incomplete:
        return True
    except _Bad:
        return False
    return p.i == len(s)  # a complete value: no trailing characters allowed


def test_prefix_scanner_oracle_itself():
    for ok in ['', '{', '{"a', '{"a":', '{"a": [1, 2', '{"a": tr', '-', '1.', '"x\\u00', '[]']:
        assert is_json_prefix(ok), ok
    for bad in ['}', '{"a" 1', '[1,,', 'tx', '01', '{"a":1}x', '"\\q', '[1] ']:
        assert not is_json_prefix(bad), bad


def check_json(schema: dict, out: dict, where: str) -> bool:
    """Validates a finished output; checks a length-stopped one is a prefix. True if finished."""
    text = out["text"]
    if out["finish_reason"] == "length":
        assert is_json_prefix(text), f"{where}: not a JSON prefix: {text!r}"
        return False
    assert out["finish_reason"] == "stop", f"{where}: {out['finish_reason']}"
    doc = json.loads(text)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(doc)]
    assert not errors, f"{where}: {text!r} violates the schema: {errors}"
    return True


def run(model: str, *args: str) -> dict:
    proc = kiln("run", "-m", model, "--json", *args, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def schema_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("schemas")
    files = {}
    for name, schema in SCHEMAS.items():
        files[name] = d / f"{name}.json"
        files[name].write_text(json.dumps(schema))
    return files


# ---- JSON Schema ----------------------------------------------------------------------------

def test_default_model_schema_outputs_validate(schema_files):
    require(DEFAULT, "default model")
    finished, total, unfinished = 0, 0, []
    for name in SCHEMAS:
        for temp, seed in [(0.0, 0), (0.8, 1), (0.8, 2), (0.8, 3)]:
            out = run("default", "--chat", "-p", PROMPTS[name], "--json-schema",
                      str(schema_files[name]), "-n", "160", "--temp", str(temp), "--seed", str(seed))
            done = check_json(SCHEMAS[name], out, f"{name} temp {temp} seed {seed}")
            finished += done
            total += 1
            if not done:
                unfinished.append(f"{name}/{seed}")
    # A 135M model sometimes loops inside a string until the limit (a valid prefix, checked
    # above); most runs must still finish, or the validity checks would prove little.
    assert finished >= total * 3 // 5, f"only {finished}/{total} finished; length: {unfinished}"


@pytest.mark.parametrize("model", TINY_MODELS)
def test_tiny_models_schema_outputs_validate(model, schema_files):
    path = TINY / f"{model}.gguf"
    require(path, "tiny model")
    finished = total = 0
    for name in SCHEMAS:
        for seed in (1, 2, 3):
            out = run(str(path), "-p", "hello", "--json-schema", str(schema_files[name]),
                      "-n", "400", "--temp", "1", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                      "--seed", str(seed))
            finished += check_json(SCHEMAS[name], out, f"{model} {name} seed {seed}")
            total += 1
    # Random weights wander, but every schema here bounds its output (except "recursive"
    # and unbounded strings/integers), so most walks end within 400 tokens.
    assert finished >= total * 2 // 3, f"only {finished}/{total} finished"


def test_json_object_mode_gives_an_object():
    require(DEFAULT, "default model")
    for seed in (1, 2):
        out = run("default", "--chat", "-p", "Describe a cat.", "--json-object", "-n", "120",
                  "--temp", "0.8", "--seed", str(seed))
        if check_json({"type": "object"}, out, f"json_object seed {seed}"):
            assert isinstance(json.loads(out["text"]), dict)


def test_jump_forward_emits_forced_tokens_and_matches_grammar(schema_files):
    require(DEFAULT, "default model")
    out = run("default", "--chat", "-p", PROMPTS["enums"], "--json-schema",
              str(schema_files["enums"]), "-n", "100", "--temp", "0")
    assert check_json(SCHEMAS["enums"], out, "enums greedy")
    # "shirt" (a const) and the key names are forced: some tokens were not sampled.
    assert out["forced_tokens"] > 0
    assert out["forced_tokens"] < len(out["output_ids"])


# ---- GBNF -----------------------------------------------------------------------------------

GRAMMARS = {
    # name: (GBNF, Python regex of the same language, or None for a custom check)
    "word_num": ('root ::= [a-z]{2,5} ("-" [0-9]{1,3})?', r"[a-z]{2,5}(-[0-9]{1,3})?"),
    "csv": ('root ::= row ("\\n" row){0,2}\nrow ::= cell ("," cell){2}\ncell ::= [A-Za-z0-9]{1,8}',
            r"[A-Za-z0-9]{1,8}(,[A-Za-z0-9]{1,8}){2}(\n[A-Za-z0-9]{1,8}(,[A-Za-z0-9]{1,8}){2}){0,2}"),
    "unicode": ('root ::= [à-ÿ]{1,4} "!"', r"[à-ÿ]{1,4}!"),
    "answer": ('root ::= ("yes" | "no") ", because " [a-z ]{1,30} "."', r"(yes|no), because [a-z ]{1,30}\."),
    "parens": ('root ::= pair{1,3}\npair ::= "(" pair{0,2} ")"', None),
}


def balanced_prefix(s: str, finished: bool) -> bool:
    depth = 0
    for c in s:
        if c not in "()":
            return False
        depth += 1 if c == "(" else -1
        if depth < 0:
            return False
    return depth == 0 if finished else True


def check_gbnf(name: str, out: dict, where: str):
    text, finish = out["text"], out["finish_reason"]
    _, regex = GRAMMARS[name]
    if finish == "length":
        if regex is None:
            assert balanced_prefix(text, False), f"{where}: {text!r}"
        return
    assert finish == "stop", where
    if regex is None:
        assert text and balanced_prefix(text, True), f"{where}: {text!r}"
    else:
        assert re.fullmatch(regex, text), f"{where}: {text!r} is not in the language"


@pytest.mark.parametrize("name", list(GRAMMARS))
def test_gbnf_outputs_are_in_the_language(name, tmp_path):
    gbnf = tmp_path / f"{name}.gbnf"
    gbnf.write_text(GRAMMARS[name][0], encoding="utf-8")
    runs = []
    if DEFAULT.exists():
        runs += [("default", ["--chat", "-p", "Answer briefly: is water wet?"], t, s)
                 for t, s in [(0.0, 0), (0.9, 1), (0.9, 2)]]
    for m in TINY_MODELS[:2]:
        runs += [(str(TINY / f"{m}.gguf"), ["-p", "hi", "--top-k", "0", "--top-p", "1",
                                            "--min-p", "0"], 1.0, s) for s in (1, 2, 3)]
    for model, extra, temp, seed in runs:
        out = run(model, *extra, "--grammar", str(gbnf), "-n", "120", "--temp", str(temp),
                  "--seed", str(seed))
        check_gbnf(name, out, f"{name} {model} temp {temp} seed {seed}")


# ---- errors ---------------------------------------------------------------------------------

def test_bad_grammar_and_schema_files_name_the_file(tmp_path):
    model = str(TINY / "llama3_tied.gguf")
    bad_gbnf = tmp_path / "bad.gbnf"
    bad_gbnf.write_text('root ::= "a" item\nitem ::= [b-\n')
    p = kiln("run", "-m", model, "-p", "x", "--grammar", str(bad_gbnf), check=False)
    assert p.returncode == 1
    assert str(bad_gbnf) in p.stderr and "line 2, column" in p.stderr, p.stderr

    bad_schema = tmp_path / "bad.json"
    bad_schema.write_text(json.dumps({"type": "object", "properties": {"a": {"not": {}}}}))
    p = kiln("run", "-m", model, "-p", "x", "--json-schema", str(bad_schema), check=False)
    assert p.returncode == 1
    assert str(bad_schema) in p.stderr and "'not'" in p.stderr and "#/properties/a" in p.stderr

    not_json = tmp_path / "not.json"
    not_json.write_text("{oops")
    p = kiln("run", "-m", model, "-p", "x", "--json-schema", str(not_json), check=False)
    assert p.returncode == 1 and str(not_json) in p.stderr

    p = kiln("run", "-m", model, "-p", "x", "--json-schema", str(tmp_path / "missing.json"),
             check=False)
    assert p.returncode == 1 and "missing.json" in p.stderr

    p = kiln("run", "-m", model, "-p", "x", "--json-object", "--grammar", str(bad_gbnf),
             check=False)
    assert p.returncode == 1 and "exclusive" in p.stderr


def test_too_ambiguous_grammar_fails_fast(tmp_path):
    """Nested repetitions through named rules (a ::= b+, b ::= c+, ...) would make the matcher
    track exponentially many parse stacks: the grammar is refused when compiled, in well under
    the time one such step would take."""
    model = str(TINY / "llama3_tied.gguf")
    gbnf = tmp_path / "ambiguous.gbnf"
    rules = ["root ::= r0 \"!\""] + [f"r{i} ::= r{i + 1}+" for i in range(40)] + ['r40 ::= "x"']
    gbnf.write_text("\n".join(rules) + "\n")
    p = kiln("run", "-m", model, "-p", "x", "--grammar", str(gbnf), "-n", "4", check=False,
             timeout=60)
    assert p.returncode == 1
    assert str(gbnf) in p.stderr and "grammar too ambiguous" in p.stderr, p.stderr
    # Stacked quantifiers are merged at parse time instead: the same depth is fine.
    stacked = tmp_path / "stacked.gbnf"
    stacked.write_text('root ::= "x"' + "+" * 40 + ' "!"\n')
    out = run(model, "-p", "hi", "--top-k", "0", "--top-p", "1", "--min-p", "0",
              "--grammar", str(stacked), "-n", "12", "--temp", "1.0", "--seed", "3")
    assert re.fullmatch(r"x+!?", out["text"]), out
