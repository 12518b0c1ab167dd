"""`kiln chat` driven through a pipe: template applied, slash commands, multi-line input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from kiln_env import KILN, MODELS, SMOLLM, kiln_json, require


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


# --- through a terminal: tmux drives the real TTY path (libedit, Ctrl-C handling) -------------

class Tmux:
    """A private tmux server (own socket) running one command in a detached session."""

    def __init__(self, command: str, env: dict[str, str], tmp_path):
        self.sock = f"kiln-chat-test-{os.getpid()}"
        self.env = env
        subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", "new-session", "-d", "-s", "chat",
                        "-x", "160", "-y", "50", command], check=True, env=env)
        for option in (["-g", "history-limit", "20000"], ["-t", "chat", "remain-on-exit", "on"]):
            subprocess.run(["tmux", "-L", self.sock, "set-option", *option], check=True)

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(["tmux", "-L", self.sock, "send-keys", "-t", "chat",
                        *(["-l"] if literal else []), *keys], check=True)

    def type_line(self, text: str) -> None:
        self.keys(text, literal=True)
        self.keys("Enter")

    def pane(self) -> str:
        return subprocess.run(["tmux", "-L", self.sock, "capture-pane", "-p", "-J", "-t", "chat",
                               "-S", "-20000"], capture_output=True, text=True, check=True).stdout

    def wait(self, pred, what: str, timeout: float = 300) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.pane()
            if pred(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; pane:\n{self.pane()[-3000:]}")

    def prompts(self, pane: str | None = None) -> int:
        """Number of input prompts shown so far (capture-pane trims the blank after ">")."""
        return sum(1 for line in (pane if pane is not None else self.pane()).splitlines()
                   if line == ">" or line.startswith("> "))

    def submit(self, text: str, what: str, timeout: float = 300) -> str:
        """Types a line and waits until the next prompt appears (the answer or command is over)."""
        before = self.prompts()
        self.type_line(text)
        return self.wait(lambda p: self.prompts(p) > before and p.rstrip().endswith(">"), what,
                         timeout)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)


def test_chat_tmux(tmp_path):
    require(KILN, "kiln binary")
    require(MODELS / "default.gguf", "default model")
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing (scripts/install_deps.sh installs it)")
    save = tmp_path / "conv.json"
    # HOME in tmp: the history file goes there; KILN_CACHE finds `-m default`.
    env = {**os.environ, "HOME": str(tmp_path), "KILN_CACHE": str(MODELS.parent), "TERM": "xterm"}
    (tmp_path / ".cache" / "kiln").mkdir(parents=True)
    # The shell records kiln's exit status itself: tmux's own (#{pane_dead_status}) depends on
    # its SIGCHLD handling, which left the child unreaped on some machines.
    status_file = tmp_path / "exit_status"
    cmd = (f"{KILN} chat -m default --temp 0 -n 16 2>{tmp_path / 'stderr.txt'}; "
           f"echo $? > {status_file}.tmp && mv {status_file}.tmp {status_file}")
    t = Tmux(cmd, env, tmp_path)
    try:
        t.wait(lambda p: p.rstrip().endswith(">"), "the first prompt", timeout=120)
        ref = kiln_json("run", "-m", str(MODELS / "default.gguf"), "--chat", "-p", "What is 2+2?",
                        "--temp", "0", "-n", "16", "--json")
        pane = t.submit("What is 2+2?", "the first answer")
        assert ref["text"].splitlines()[0] in pane, (ref["text"], pane[-2000:])
        pane = t.submit("/stats", "/stats")
        assert "tokens/s" in pane and "cached" in pane and "finish: " in pane
        # Line editing (libedit): cursor left and insert; history: Up recalls the last line.
        t.keys("/sytem You are terse.", literal=True)
        t.keys(*["Left"] * len("tem You are terse."))
        before = t.prompts()
        t.keys("s", literal=True)
        t.keys("Enter")
        pane = t.wait(lambda p: t.prompts(p) > before, "/system")
        assert "(system prompt set)" in pane
        n_stats = pane.count("tokens/s")
        before = t.prompts()
        t.keys("Up", "Up")  # /system, then /stats
        t.keys("Enter")
        pane = t.wait(lambda p: p.count("tokens/s") > n_stats, "/stats from history")
        pane = t.submit("/set temperature=0 max_tokens=400", "/set")
        assert "(temperature = 0)" in pane and "(max_tokens = 400)" in pane
        # Ctrl-C during an answer stops the answer, not the program.
        t.type_line("Write a very long story about a kiln, with many chapters.")
        t.wait(lambda p: len(p.rsplit("> Write a very long story", 1)[-1].split("\n", 1)[-1]
                             .strip()) > 20, "the long answer to start")
        before = t.prompts()
        t.keys("C-c")
        pane = t.wait(lambda p: "[interrupted]" in p and t.prompts(p) > before, "[interrupted]",
                      timeout=60)
        pane = t.submit("/stats", "/stats after Ctrl-C")
        assert "finish: interrupted" in pane
        gen = [line for line in pane.splitlines() if line.startswith("generation:")][-1]
        assert int(gen.split()[1]) < 400, gen
        # Ctrl-C at the prompt drops the typed line.
        t.keys("this line is dropped", literal=True)
        t.wait(lambda p: p.rstrip().endswith("> this line is dropped"), "the typed line")
        t.keys("C-c")
        pane = t.submit(f"/save {save}", "/save")
        assert f"(saved to {save})" in pane, pane[-1500:]
        conv = json.loads(save.read_text())["messages"]
        assert [m["role"] for m in conv] == ["system", "user", "assistant", "user", "assistant"]
        assert conv[0]["content"] == "You are terse."
        assert conv[1]["content"] == "What is 2+2?" and conv[2]["content"] == ref["text"]
        assert "dropped" not in json.dumps(conv)
        pane = t.submit("/reset", "/reset")
        assert "(conversation cleared)" in pane
        t.type_line("/exit")
        deadline = time.time() + 60
        while not status_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert status_file.exists(), ("kiln chat did not exit after /exit",
                                      (tmp_path / "stderr.txt").read_text())
        assert status_file.read_text().strip() == "0", (status_file.read_text(),
                                                         (tmp_path / "stderr.txt").read_text())
        assert (tmp_path / ".cache" / "kiln" / "chat_history").read_text().count("/stats") >= 2
    finally:
        t.close()
