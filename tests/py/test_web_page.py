"""The web chat page at / in headless Chromium (Debian `chromium`, driven by npm playwright-core).

tests/js/web_chat.mjs sets a system prompt and temperature, sends a message, watches the answer
stream in, compares it with the API's answer to the same request, checks tokens/s, stops a long
answer with the Stop button (the server must cancel it) and stores a screenshot, whose path this
test prints (an artifact: build/test-artifacts/web_chat.png)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kiln_env import BUILD, NODE_MODULES, ROOT
from test_server_util import running_server

SCRIPT = ROOT / "tests" / "js" / "web_chat.mjs"
CHROMIUM = Path(os.environ.get("KILN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("KILN_TEST_ARTIFACTS", BUILD / "test-artifacts"))


def test_web_chat_in_chromium():
    missing = [what for what, ok in [("node", shutil.which("node")),
                                     ("playwright-core", (NODE_MODULES / "playwright-core").is_dir()),
                                     ("chromium", CHROMIUM.exists())] if not ok]
    if missing:
        message = f"missing for the browser test: {', '.join(missing)} (scripts/install_deps.sh)"
        if os.environ.get("KILN_REQUIRE_ORACLES"):
            pytest.fail(message)
        pytest.skip(message)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "web_chat.png"
    shot.unlink(missing_ok=True)
    with running_server() as srv:
        proc = subprocess.run(["node", str(SCRIPT), srv.base, srv.model_id, str(shot)],
                              capture_output=True, text=True, timeout=900,
                              env={**os.environ, "KILN_NODE_MODULES": str(NODE_MODULES),
                                   "KILN_CHROMIUM": str(CHROMIUM)})
        assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        assert srv.alive()
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\nweb chat answer: {found['answer']!r} ({found['stats']}; {found['states']} "
          f"streamed states)\nstopped: {found['stopped_stats']}\nscreenshot: {shot}")
