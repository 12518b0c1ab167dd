"""Load: 64 concurrent streaming clients, a quarter of them hanging up mid-stream.

Every stream that completes is well-formed (role chunk, deltas, one finish per choice, usage,
[DONE]); the cancelled ones free their KV blocks; the server serves normally afterwards."""

from __future__ import annotations

import http.client
import json
import threading
import time

from test_server_util import get, metrics, post, running_server, sse_events, validate

N_CLIENTS = 64
MAX_TOKENS = 12


def one_client(port: int, model: str, idx: int, results: list) -> None:
    disconnect = idx % 4 == 3
    body = {"model": model, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"Count to {idx % 7 + 3}."}],
            "max_tokens": MAX_TOKENS, "temperature": 0.8, "seed": idx}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            results[idx] = ("status", r.status, r.read()[:200])
            return
        lines = []
        while True:
            line = r.readline()
            if not line:
                break
            lines.append(line.decode("utf-8").rstrip("\n"))
            if disconnect and sum(1 for x in lines if x.startswith("data:")) >= 3:
                conn.sock.close()  # hang up mid-stream
                results[idx] = ("disconnected",)
                return
        conn.close()
        results[idx] = ("done", lines)
    except Exception as e:  # noqa: BLE001 — recorded and asserted on below
        results[idx] = ("exception", repr(e))


def check_stream(lines) -> None:
    chunks, done = sse_events(lines)
    assert done, "no [DONE]"
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and 1 <= usage["completion_tokens"] <= MAX_TOKENS
    assert len({c["id"] for c in chunks}) == 1


def test_concurrent_streams():
    with running_server("--max-sequences", "8") as srv:
        results: list = [None] * N_CLIENTS
        threads = [threading.Thread(target=one_client, args=(srv.port, srv.model_id, i, results))
                   for i in range(N_CLIENTS)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        elapsed = time.time() - t0
        kinds = [r[0] if r else "missing" for r in results]
        assert kinds.count("done") == N_CLIENTS - N_CLIENTS // 4, (kinds, [r for r in results if r and r[0] != "done" and r[0] != "disconnected"][:3])
        assert kinds.count("disconnected") == N_CLIENTS // 4
        for r in results:
            if r[0] == "done":
                check_stream(r[1])
        # Cancelled requests free their blocks; wait for the engine to settle.
        deadline = time.time() + 30
        m = metrics(srv.base)
        while time.time() < deadline and (m["kiln_running"] or m["kiln_queue_length"]
                                          or m["kiln_http_requests_in_flight"]):
            time.sleep(0.2)
            m = metrics(srv.base)
        assert m["kiln_running"] == 0 and m["kiln_queue_length"] == 0, m
        assert m["kiln_http_requests_in_flight"] == 0, m
        # KV blocks all free: what is still used is held only by the prefix cache (reusable).
        assert m["kiln_kv_blocks_used"] == m["kiln_kv_blocks_cached"], m
        assert m["kiln_http_client_disconnects_total"] >= 1, m
        print(f"\n{N_CLIENTS} clients in {elapsed:.1f} s; kv blocks used after: "
              f"{m['kiln_kv_blocks_used']:.0f}/{m['kiln_kv_blocks_total']:.0f} "
              f"({m['kiln_kv_blocks_cached']:.0f} prefix-cached); "
              f"disconnects seen: {m['kiln_http_client_disconnects_total']:.0f}")
        ok = post(srv.base, "/v1/chat/completions",
                  {"model": srv.model_id, "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": 4})
        assert ok.status_code == 200
        assert get(srv.base, "/health").status_code == 200
