"""The README's `kiln serve` / curl / openai / `kiln chat` examples work as printed.

The commands are read from README.md (the block after "Serve the OpenAI API") and run as they
are, with two substitutions only: `build/kiln` → the kiln binary under test, and port 8000 → a
free port (CI machines may have 8000 taken)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

from kiln_env import KILN, MODELS, ROOT, require
from test_server_util import free_port

SECTION = "Serve the OpenAI API"


def readme_blocks() -> tuple[list[str], str]:
    """(shell commands with continuations joined, python source) of the serve section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md lost its '{SECTION}' section"
    section = text[text.index(SECTION):]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    sh = next(body for lang, body in blocks if lang == "sh")
    py = next(body for lang, body in blocks if lang == "python")
    commands, current = [], ""
    for line in sh.splitlines():
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return [c for c in commands if c], py


def localize(command: str, port: int) -> str:
    return command.replace("build/kiln", str(KILN)).replace("8000", str(port))


def test_readme_serve_curl_openai_chat():
    require(KILN, "kiln binary")
    require(MODELS / "default.gguf", "default model")
    commands, py = readme_blocks()
    serve = [c for c in commands if " serve " in c]
    curl = [c for c in commands if c.startswith("curl ")]
    chat = [c for c in commands if " chat " in c]
    assert len(serve) == len(curl) == len(chat) == 1, commands
    assert "-m default" in serve[0] and "-m default" in chat[0]
    assert "8000" in serve[0] and "8000" in curl[0] and "8000" in py
    port = free_port()
    srv = subprocess.Popen(shlex.split(localize(serve[0], port)), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.time() + 180
        while time.time() < deadline and not line.startswith("listening on"):
            line = srv.stdout.readline()
            if not line and srv.poll() is not None:
                break
        assert line.startswith("listening on"), srv.stderr.read()[-3000:]
        # curl, exactly as printed.
        out = subprocess.run(["bash", "-c", localize(curl[0], port)], capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        body = json.loads(out.stdout)
        assert body["object"] == "chat.completion", body
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert body["choices"][0]["message"]["content"].strip(), body
        assert body["choices"][0]["finish_reason"] in ("stop", "length")
        # The openai client snippet, exactly as printed.
        out = subprocess.run([sys.executable, "-c", localize(py, port)], capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.strip(), "the openai example printed nothing"
    finally:
        srv.send_signal(signal.SIGINT)
        code = srv.wait(timeout=60)
    assert code == 0, f"kiln serve exited with {code} after Ctrl-C"
    # `kiln chat -m default`, driven through a pipe.
    out = subprocess.run(shlex.split(localize(chat[0], port)), input="Hello!\n/exit\n",
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip(), "kiln chat answered nothing"
