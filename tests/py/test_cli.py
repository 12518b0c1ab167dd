"""The `kiln` command's contract (docs/cli.md): flags, --json fields, errors."""

from __future__ import annotations

import json

import pytest

from kiln_env import ROOT, SMOLLM, kiln, kiln_json, require

TINY = ROOT / "tests" / "testdata" / "tiny"


def test_run_json_fields_and_greedy_determinism():
    require(SMOLLM, "model")
    a = kiln_json("run", "-m", "default", "-p", "The capital of France is", "-n", "8", "--temp", "0", "--json")
    for key in ("model", "prompt_ids", "output_ids", "text", "finish_reason", "timings"):
        assert key in a
    for key in ("load_ms", "prompt_ms", "gen_ms", "prompt_tok_s", "gen_tok_s"):
        assert key in a["timings"]
    assert a["finish_reason"] in ("stop", "length")
    assert len(a["output_ids"]) <= 8
    b = kiln_json("run", "-m", "default", "-p", "The capital of France is", "-n", "8", "--temp", "0", "--json")
    assert a["output_ids"] == b["output_ids"]
    # The text is exactly the detokenized output (no EOS generated within 8 tokens here).
    text = kiln("detokenize", "-m", "default", json.dumps(a["output_ids"])).stdout
    assert text == a["text"]


def test_seeded_sampling_is_reproducible_and_seed_dependent():
    require(SMOLLM, "model")
    args = ["run", "-m", "default", "-p", "Write a story about a cat", "-n", "24", "--temp", "1.0",
            "--top-k", "0", "--top-p", "1", "--min-p", "0", "--json", "--ignore-eos"]
    a = kiln_json(*args, "--seed", "1")
    b = kiln_json(*args, "--seed", "1")
    c = kiln_json(*args, "--seed", "2")
    assert a["output_ids"] == b["output_ids"]
    assert a["output_ids"] != c["output_ids"]


def test_stop_string_is_not_emitted():
    require(SMOLLM, "model")
    base = kiln_json("run", "-m", "default", "-p", "The capital of France is", "-n", "12", "--temp", "0", "--json")
    assert "." in base["text"], base["text"]
    stopped = kiln_json("run", "-m", "default", "-p", "The capital of France is", "-n", "12", "--temp", "0",
                        "--stop", ".", "--json")
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"] == base["text"].split(".")[0]


def test_ids_prompt_and_chat_template():
    require(SMOLLM, "model")
    r = kiln_json("run", "-m", "default", "--ids", "504,3575,282,4649,314", "-n", "3", "--temp", "0", "--json")
    assert r["prompt_ids"] == [504, 3575, 282, 4649, 314]
    chat = kiln_json("run", "-m", "default", "-p", "Hi", "--chat", "-n", "4", "--temp", "0", "--json")
    tok = kiln_json("tokenize", "-m", "default", "--ids", "--special", "<|im_start|>")
    assert tok[0] in chat["prompt_ids"]


@pytest.mark.parametrize("args,needle", [
    (["run", "-m", "/nonexistent/model.gguf", "-p", "x"], "nonexistent"),
    (["run", "-m", "default", "-p", "x", "--temp", "-1"], "temperature"),
    (["run", "-m", "default", "-p", "x", "--top-p", "0"], "top_p"),
    (["run", "-m", "default", "--ids", "999999999"], "out of range"),
    (["run", "-m", "default"], "prompt"),
    (["info", "-m", str(TINY / "README.md")], ""),
])
def test_errors_are_clear_and_exit_nonzero(args, needle):
    require(SMOLLM, "model")
    proc = kiln(*args, check=False)
    assert proc.returncode != 0
    assert proc.stderr.startswith("kiln: error:"), proc.stderr
    assert needle in proc.stderr


def test_tokenize_lines_and_detokenize_lines(tmp_path):
    require(SMOLLM, "model")
    texts = ["Hello world", "multi\nline \"quoted\"", "émoji 🍵", ""]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(t) for t in texts) + "\n")
    out = kiln("tokenize", "-m", "default", "--lines", str(inp)).stdout.strip().split("\n")
    ids = [json.loads(line) for line in out]
    assert len(ids) == len([t for t in texts if t != ""]) or len(ids) == len(texts)
    ids_file = tmp_path / "ids.jsonl"
    ids_file.write_text("\n".join(json.dumps(i) for i in ids) + "\n")
    back = [json.loads(line) for line in kiln("detokenize", "-m", "default", "--lines", str(ids_file)).stdout.strip().split("\n")]
    assert back == texts[: len(back)]


MANIFEST = json.loads((TINY / "manifest.json").read_text())


@pytest.mark.parametrize("entry", [m for m in MANIFEST["models"] if m["gguf"]], ids=lambda m: m["name"])
def test_tiny_gguf_greedy_equals_transformers(entry):
    """`kiln run --ids` on each tiny F32/BF16 GGUF continues exactly as transformers did."""
    g = entry["greedy"]
    gguf = TINY / entry["gguf"][0]["file"]
    r = kiln_json("run", "-m", str(gguf), "--ids", ",".join(map(str, g["prompt_ids"])), "-n",
                  str(len(g["tokens"])), "--temp", "0", "--ignore-eos", "--json")
    assert r["output_ids"] == g["tokens"]
