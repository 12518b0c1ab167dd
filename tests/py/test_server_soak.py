"""The CI soak (issue #22): bench/soak.py against `kiln serve` for a minute, 16 client threads of
every kind (streams read to the end over Connection: close and keep-alive, streams abandoned
mid-way, slow readers, non-streaming, n = 2, JSON Schema, forced tool calls, intended 400s).
Every request must be classified (none lost), the engine must have finished exactly the
requests the server accepted, every KV block must be free again, no read timeout, no stall, RSS
flat after warm-up. The hour at 64 streams is the same script: docs/performance.md."""

from __future__ import annotations

import json
import subprocess
import sys

from kiln_env import KILN, ROOT, SMOLLM, require


def test_soak_one_minute_nothing_lost_nothing_leaked():
    require(KILN, "kiln binary")
    require(SMOLLM, "SmolLM2")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--kiln", str(KILN), "-m", str(SMOLLM),
         "--serve-args", "--max-sequences 8 --max-context 2048", "--streams", "16",
         "--duration", "60", "--stall-bound", "30", "--rss-slack-mb", "48", "--seed", "1"],
        capture_output=True, text=True, timeout=300)
    assert proc.stdout, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    print(json.dumps({k: summary[k] for k in ("requests", "outcomes", "engine_finished",
                                                "gap_p99_s", "gap_max_s", "rss_mb")}))
    assert proc.returncode == 0 and summary["ok"], summary["violations"]
    # Every kind of client ran, and the run was not trivially small.
    assert set(summary["scenarios"]) == {"stream_close", "stream_keepalive", "abandon",
                                         "slow_reader", "non_stream", "n2", "json_schema",
                                         "tool_call", "bad_request"}, summary["scenarios"]
    assert summary["outcomes"].get("completed", 0) >= 100, summary["outcomes"]
    assert summary["outcomes"].get("abandoned", 0) >= 5, summary["outcomes"]
    assert summary["client_disconnects"] >= 1
