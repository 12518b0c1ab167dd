"""`kiln serve` against the official `openai` npm package (unmodified), run by node.

tests/js/openai_client.mjs holds the checks (chat and completions, stream and not, n > 1, stop,
seed, logprobs, include_usage, error classes, a client abort freeing its KV blocks); this module
starts the server on 127.0.0.1 and asserts that every check ran and passed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from kiln_env import NODE_MODULES, ROOT
from test_server_util import running_server

SCRIPT = ROOT / "tests" / "js" / "openai_client.mjs"
CHECKS = ["models", "chat", "chat_stream_include_usage", "chat_n", "seed", "stop",
          "chat_logprobs", "completions", "error_classes", "abort_frees_kv"]


def run_node(*args: str) -> list[str]:
    if shutil.which("node") is None or not (NODE_MODULES / "openai").is_dir():
        if os.environ.get("KILN_REQUIRE_ORACLES"):
            pytest.fail(f"node or the openai npm package missing under {NODE_MODULES}")
        pytest.skip(f"node or the openai npm package missing under {NODE_MODULES}")
    proc = subprocess.run(["node", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "KILN_NODE_MODULES": str(NODE_MODULES)})
    assert proc.returncode == 0, f"node failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])["passed"]


def test_openai_npm_client():
    with running_server() as srv:
        passed = run_node(srv.base, srv.model_id)
        assert passed == CHECKS
        assert srv.alive()


def test_openai_npm_api_key():
    with running_server("--api-key", "k3y-for-npm") as srv:
        passed = run_node(srv.base, srv.model_id, "k3y-for-npm")
        assert passed == ["authentication_error", "authorized"]
