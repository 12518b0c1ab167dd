"""`kiln chat` driven through a pipe: template applied, slash commands, multi-line input."""

from __future__ import annotations

import json
import subprocess

from kiln_env import KILN, SMOLLM, kiln_json, require


def run_chat(script: str, *flags: str) -> subprocess.CompletedProcess:
    require(KILN, "kiln binary")
    require(SMOLLM, "SmolLM2 model")
    return subprocess.run([str(KILN), "chat", "-m", str(SMOLLM), "--temp", "0", "-n", "16", *flags],
                          input=script, capture_output=True, text=True, timeout=300)


def test_chat_pipe(tmp_path):
    save = tmp_path / "conv.json"
    script = "\n".join([
        "/help",
        "What is 2+2?",
        "/stats",
        "/set temperature=0 max_tokens=6",
        "/system You are terse.",
        "first line \\",
        "second line",
        '"""',
        "block a",
        "block b",
        '"""',
        f"/save {save}",
        "/bogus",
        "/exit",
        "this is never sent",
    ]) + "\n"
    p = run_chat(script)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert "/system TEXT" in out and "Ctrl-C stops the current answer" in out
    # The template is the model's: the first answer equals `kiln run --chat` (same prompt,
    # greedy, no system prompt), an independent path through the non-serving engine.
    ref = kiln_json("run", "-m", str(SMOLLM), "--chat", "-p", "What is 2+2?", "--temp", "0",
                    "-n", "16", "--json")
    assert ref["text"] and ref["text"] in out
    assert "prompt:" in out and "tokens/s" in out and "cached" in out
    assert "(temperature = 0)" in out and "(max_tokens = 6)" in out
    assert "unknown command /bogus" in out
    conv = json.loads(save.read_text())["messages"]
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user", "assistant",
                                         "user", "assistant"]
    assert conv[0]["content"] == "You are terse."
    assert conv[2]["content"] == ref["text"]
    assert conv[3]["content"] == "first line \nsecond line"
    assert conv[5]["content"] == "block a\nblock b"
    assert "never sent" not in json.dumps(conv)


def test_chat_reset_and_eof():
    p = run_chat("Hi\n/reset\n/stats\nHi\n")  # ends with EOF instead of /exit
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    assert "(conversation cleared)" in lines
    # After /reset the same question gets the same greedy answer (history really cleared).
    idx = lines.index("(conversation cleared)")
    assert lines[0] == lines[-1], lines
    assert any(x.startswith("prompt:") for x in lines[idx:])
