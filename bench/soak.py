#!/usr/bin/env python3
"""Soak test of `kiln serve`: many concurrent clients of every kind for a while, then the books.

  bench/soak.py --kiln build/kiln -m default --streams 64 --duration 3600   # the long run
  bench/soak.py --base http://127.0.0.1:8000 --pid PID --duration 120      # a running server

Each of --streams client threads sends requests back to back until --duration has passed, each
request one scenario drawn at random (seeded): a stream read to the end (Connection: close or
kept alive for the next request), a stream the client abandons mid-way, a slow reader, a
non-streaming request, n = 2, a JSON-Schema response_format, a forced tool call, and a request
the server must refuse with a 400. Every request is classified; what cannot be classified is a
failure:
  completed   200 with every choice finished, [DONE], and usage (streams: include_usage);
  abandoned   the client closed the connection on purpose;
  refused     the intended 400, or a 429/503 (load shedding, named in the body);
  ended       a stream the server ended with an error event, then [DONE].
Then, with the server idle, the books must balance:
  - every request the server accepted was finished by the engine
    (kiln_requests_finished_total grew by exactly the requests answered 200 or abandoned);
  - no stream waited longer than --stall-bound between events;
  - every KV block is free again (prefix-cache-held blocks aside);
  - RSS after warm-up (the first fifth) grew by at most --rss-slack-mb;
  - no read timeouts, and every client disconnect the server counted was an abandoned request.
Prints one JSON object (the figures docs/performance.md records) and exits 1 on any violation.
Only the standard library; every socket has a timeout, so the run stops by itself.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlparse

SCENARIOS = ["stream_close", "stream_keepalive", "abandon", "slow_reader", "non_stream", "n2",
             "json_schema", "tool_call", "bad_request"]

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 99}},
          "required": ["name", "age"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16}},
                   "required": ["city"], "additionalProperties": False}}}]
# Each makes an otherwise valid request a 400 naming the field (OpenAI's spec rejects them all).
BAD_FIELDS = [("stop", []), ("temperature", -3), ("n", "x"), ("max_tokens", -5), ("messages", []),
              ("top_p", 2), ("logit_bias", {"x": 1})]
TOPICS = ["a lighthouse", "the sea", "a kiln", "bread", "a fox", "winter", "a robot", "tea"]


class Violation(Exception):
    pass


def request_body(rng: random.Random, scenario: str, model: str, max_tokens: int) -> dict:
    """A chat request of the scenario (the client's own behaviour, e.g. abandoning, is not in it)."""
    topic = rng.choice(TOPICS)
    chat = {"model": model, "messages": [{"role": "user",
                                                 "content": f"Write about {topic}."}],
            "max_tokens": rng.randint(8, max_tokens), "temperature": 0.8,
            "seed": rng.randint(0, 1 << 30)}
    if scenario == "n2":
        chat["n"] = 2
    elif scenario == "json_schema":
        chat["messages"][0]["content"] = f"Invent a person who likes {topic}."
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "person", "schema": SCHEMA}}
        chat["max_tokens"] = 48
    elif scenario == "tool_call":
        chat["messages"][0]["content"] = "What is the weather in Paris?"
        chat["tools"] = TOOLS
        chat["tool_choice"] = "required"
        chat["max_tokens"] = 48
    elif scenario == "bad_request":
        field, value = rng.choice(BAD_FIELDS)
        chat[field] = value
    if scenario != "non_stream":
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if scenario == "bad_request":
        chat.pop("stream_options", None)
    return chat


def check_final(contents: dict, finishes: dict, n: int, scenario: str) -> None:
    """Every choice finished for a reason the scenario allows; JSON parses when it stopped."""
    if set(finishes) != set(range(n)):
        raise Violation(f"{scenario}: choices finished {sorted(finishes)} of {n}")
    for c, reason in finishes.items():
        if reason not in ("stop", "length", "tool_calls"):
            raise Violation(f"{scenario}: finish_reason {reason!r}")
        if scenario == "json_schema" and reason == "stop":
            json.loads(contents.get(c, ""))  # must parse when it ended by itself
        if scenario == "tool_call" and reason != "tool_calls" and reason != "length":
            raise Violation(f"tool_call: finish_reason {reason!r}")


def add_run_args(ap: argparse.ArgumentParser, clients: str, help_clients: str) -> None:
    """The arguments both soaks take (clients: the flag naming how many run at once)."""
    ap.add_argument("-m", "--model", default="default")
    ap.add_argument(clients, type=int, default=64, help=help_clients)
    ap.add_argument("--duration", type=float, default=3600, help="seconds of new requests")
    ap.add_argument("--max-tokens", type=int, default=96, help="largest max_tokens drawn")
    ap.add_argument("--stall-bound", type=float, default=60, help="longest wait between events")
    ap.add_argument("--rss-slack-mb", type=float, default=64, help="RSS growth after warm-up")
    ap.add_argument("--seed", type=int, default=1)


def books(outcomes: Counter, accepted: int, finished: float, held: float, gaps: list[float],
          warm_rss: float | None, end_rss: float | None, args) -> tuple[list[str], float, float]:
    """The checks both soaks make once the engine is idle: (violations, p99 gap, max gap)."""
    gaps = sorted(gaps) or [0.0]
    p99 = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
    v = []
    if outcomes["lost"]:
        v.append(f"{outcomes['lost']} requests lost")
    if finished != accepted:
        v.append(f"the engine finished {finished:.0f} requests, {accepted} were accepted")
    if held:
        v.append(f"{held:.0f} KV blocks still held by sequences after the run")
    if gaps[-1] > args.stall_bound:
        v.append(f"a stream waited {gaps[-1]:.1f} s between events")
    if warm_rss is not None and end_rss is not None and end_rss - warm_rss > args.rss_slack_mb:
        v.append(f"RSS grew {end_rss - warm_rss:.0f} MB after warm-up")
    return v, p99, gaps[-1]


def self_rss_mb() -> float:
    """This process's resident memory (the in-process soaks hold the engine)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class InProcessBooks:
    """What an in-process soak counts (in_process_report reads it)."""

    def __init__(self, args):
        self.args = args
        self.outcomes: Counter = Counter()
        self.by_scenario: Counter = Counter()
        self.accepted = 0
        self.gaps: list[float] = []
        self.violations: list[str] = []
        self.deadline = 0.0


def in_process_report(run, t0: float, clients: tuple[str, int], before: dict, after: dict,
                      warm: float | None, end: float | None, rss: list[float]) -> dict:
    """The report of an in-process soak (Python API, C API): `run` holds outcomes,
    by_scenario, accepted, gaps, violations and args; before/after are the engine's metrics."""
    finished = after["requests_finished"] - before["requests_finished"]
    held = after["kv_blocks_used"] - after["kv_blocks_cached"]
    v, p99, gap_max = books(run.outcomes, run.accepted, finished, held, run.gaps, warm, end,
                            run.args)
    v = run.violations + v
    return {"duration_s": round(time.time() - t0, 1), clients[0]: clients[1],
            "requests": sum(run.outcomes.values()), "outcomes": dict(run.outcomes),
            "scenarios": dict(run.by_scenario), "accepted": run.accepted,
            "engine_finished": finished, "gap_p99_s": round(p99, 3),
            "gap_max_s": round(gap_max, 3),
            "rss_mb": {"warm": warm, "end": end, "max": max(rss) if rss else None},
            "kv_blocks_held_after": held, "kv_blocks_cached_after": after["kv_blocks_cached"],
            "ok": not v, "violations": v[:20]}


class Conn:
    """One HTTP/1.1 connection with a bounded timeout on every operation."""

    def __init__(self, host: str, port: int, timeout: float, rcvbuf: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""

    def send(self, path: str, body: dict, keep_alive: bool) -> None:
        data = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}"
                "\r\n\r\n").encode()
        self.sock.sendall(head + data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise Violation(f"connection closed before {marker!r}: {self.buf[:200]!r}")
        out, self.buf = self.buf.split(marker, 1)
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise Violation("connection closed in the middle of a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response_head(self) -> tuple[int, dict]:
        head = self.read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", head[0])
        if not m:
            raise Violation(f"not an HTTP status line: {head[0]!r}")
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(m.group(1)), headers

    def chunks(self, on_chunk=None):
        """The chunked body, chunk by chunk (on_chunk is called between reads)."""
        while True:
            size = int(self.read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self.read_until(b"\r\n")
                return
            data = self.read_exact(size)
            self.read_until(b"\r\n")
            yield data
            if on_chunk:
                on_chunk()

    def body(self, headers: dict) -> bytes:
        if headers.get("transfer-encoding") == "chunked":
            return b"".join(self.chunks())
        return self.read_exact(int(headers.get("content-length", "0")))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Soak:
    def __init__(self, args):
        self.args = args
        u = urlparse(args.base)
        self.host, self.port = u.hostname, u.port
        self.lock = threading.Lock()
        self.outcomes: Counter = Counter()
        self.by_scenario: Counter = Counter()
        self.accepted = 0          # requests the server answered 200 or that the client abandoned
        self.abandoned_streams = 0
        self.refused_400 = 0       # the intended 400s
        self.violations: list[str] = []
        self.max_gap = 0.0
        self.gaps: list[float] = []
        self.deadline = 0.0
        self.model = args.model_id

    # ------------------------------------------------------------------ one request
    def run_stream(self, conn: Conn, scenario: str, n: int, rng: random.Random) -> str:
        status, headers = conn.response_head()
        if status != 200:
            return self.refusal(status, conn.body(headers), scenario)
        abandon_after = rng.randint(1, 6) if scenario == "abandon" else None
        slow = scenario == "slow_reader"
        events, contents, finishes = 0, {}, {}
        usage, done, error = None, False, None
        last = time.time()
        pending = b""
        for data in conn.chunks(on_chunk=(lambda: time.sleep(0.05)) if slow else None):
            now = time.time()
            gap = now - last
            last = now
            with self.lock:
                self.gaps.append(gap)
            pending += data
            while b"\n\n" in pending:
                event, pending = pending.split(b"\n\n", 1)
                line = event.decode()
                if line.startswith(":"):
                    continue  # keep-alive comment
                if not line.startswith("data: "):
                    raise Violation(f"not an SSE data line: {line[:100]!r}")
                payload = line[len("data: "):]
                if done:
                    raise Violation("an event after [DONE]")
                if payload == "[DONE]":
                    done = True
                    continue
                obj = json.loads(payload)
                if "error" in obj:
                    error = obj["error"]
                    continue
                events += 1
                if obj.get("usage"):
                    usage = obj["usage"]
                for ch in obj.get("choices", []):
                    i = ch["index"]
                    delta = ch.get("delta", {})
                    contents[i] = contents.get(i, "") + (delta.get("content") or "")
                    if ch.get("finish_reason"):
                        finishes[i] = ch["finish_reason"]
            if abandon_after is not None and events >= abandon_after and not done:
                conn.close()
                with self.lock:
                    self.abandoned_streams += 1
                return "abandoned"
        if not done:
            raise Violation(f"{scenario}: stream ended without [DONE]")
        if error is not None:
            return "ended"
        if usage is None or usage.get("completion_tokens", 0) <= 0:
            raise Violation(f"{scenario}: no usage chunk ({usage})")
        check_final(contents, finishes, n, scenario)
        return "completed"

    def refusal(self, status: int, body: bytes, scenario: str) -> str:
        try:
            err = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            raise Violation(f"{scenario}: HTTP {status} without an error object: {body[:200]!r}")
        if status == 400 and scenario == "bad_request" and err.get("param"):
            with self.lock:
                self.refused_400 += 1
            return "refused"
        if status in (429, 503):
            return "refused"
        raise Violation(f"{scenario}: HTTP {status}: {err}")

    def run_once(self, rng: random.Random, conn: Conn | None) -> Conn | None:
        scenario = rng.choice(SCENARIOS)
        path = "/v1/chat/completions"
        body = request_body(rng, scenario, self.model, self.args.max_tokens)
        keep = scenario == "stream_keepalive"
        if conn is None:
            conn = Conn(self.host, self.port, self.args.stall_bound,
                        rcvbuf=4096 if scenario == "slow_reader" else 0)
        conn.send(path, body, keep_alive=keep)
        n = body.get("n", 1)
        try:
            if body.get("stream"):
                outcome = self.run_stream(conn, scenario, n, rng)
            else:
                status, headers = conn.response_head()
                raw = conn.body(headers)
                if status != 200:
                    outcome = self.refusal(status, raw, scenario)
                else:
                    obj = json.loads(raw)
                    finishes = {c["index"]: c["finish_reason"] for c in obj["choices"]}
                    contents = {c["index"]: c["message"].get("content") or ""
                                for c in obj["choices"]}
                    if obj.get("usage", {}).get("completion_tokens", 0) <= 0:
                        raise Violation(f"{scenario}: no usage")
                    check_final(contents, finishes, n, scenario)
                    outcome = "completed"
        except (socket.timeout, TimeoutError):
            raise Violation(f"{scenario}: no byte for {self.args.stall_bound} s (stalled)")
        with self.lock:
            self.outcomes[outcome] += 1
            self.by_scenario[scenario] += 1
            if scenario != "bad_request" and outcome in ("completed", "abandoned", "ended"):
                self.accepted += 1
        if keep and outcome == "completed":
            return conn
        conn.close()
        return None

    def client(self, idx: int) -> None:
        rng = random.Random(self.args.seed * 1000 + idx)
        conn = None
        while time.time() < self.deadline:
            try:
                conn = self.run_once(rng, conn)
            except (Violation, OSError, ValueError, KeyError) as e:
                with self.lock:
                    self.violations.append(f"client {idx}: {type(e).__name__}: {e}")
                    self.outcomes["lost"] += 1
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    # ------------------------------------------------------------------ the books
    def get(self, path: str) -> str:
        c = Conn(self.host, self.port, 30)
        c.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
        status, headers = c.response_head()
        text = c.body(headers).decode()
        c.close()
        if status != 200:
            raise Violation(f"GET {path}: HTTP {status}")
        return text

    def metrics(self) -> dict:
        text = self.get("/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def rss_mb(self) -> float | None:
        if not self.args.pid:
            return None
        with open(f"/proc/{self.args.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None

    def run(self) -> dict:
        if self.model is None:
            self.model = json.loads(self.get("/v1/models"))["data"][0]["id"]
        before = self.metrics()
        t0 = time.time()
        self.deadline = t0 + self.args.duration
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                   for i in range(self.args.streams)]
        for t in threads:
            t.start()
        rss, warm_rss = [], None
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            r = self.rss_mb()
            if r is not None:
                rss.append(r)
                if warm_rss is None and time.time() - t0 >= self.args.duration / 5:
                    warm_rss = r
        for t in threads:
            t.join(timeout=self.args.stall_bound)
        # Idle: nothing running or queued (bounded wait).
        idle_deadline = time.time() + 60
        after = self.metrics()
        while (after.get("kiln_running", 0) or after.get("kiln_queue_length", 0)
               or after.get("kiln_http_requests_in_flight", 0)) and time.time() < idle_deadline:
            time.sleep(0.5)
            after = self.metrics()
        end_rss = self.rss_mb()
        d = lambda k: after.get(k, 0) - before.get(k, 0)  # noqa: E731
        finished = d("kiln_requests_finished_total")
        kv_free = after["kiln_kv_blocks_used"] - after["kiln_kv_blocks_cached"]
        v, p99, gap_max = books(self.outcomes, self.accepted, finished, kv_free, self.gaps,
                                warm_rss, end_rss, self.args)
        v = self.violations + v
        summary = {
            "duration_s": round(time.time() - t0, 1), "streams": self.args.streams,
            "requests": sum(self.outcomes.values()), "outcomes": dict(self.outcomes),
            "scenarios": dict(self.by_scenario), "accepted": self.accepted,
            "engine_finished": finished, "client_disconnects": d("kiln_http_client_disconnects_total"),
            "abandoned_streams": self.abandoned_streams,
            "read_timeouts": d("kiln_http_request_read_timeouts_total"),
            "stream_stalls": d("kiln_http_stream_stalls_total"),
            "gap_p99_s": round(p99, 3), "gap_max_s": round(gap_max, 3),
            "rss_mb": {"warm": warm_rss, "end": end_rss, "max": max(rss) if rss else None},
            "kv_blocks_held_after": kv_free, "kv_blocks_cached_after": after["kiln_kv_blocks_cached"],
        }
        http_400 = d('kiln_http_responses_total{code="400"}')
        summary["http_400"] = http_400
        if http_400 != self.refused_400:
            v.append(f"the server counted {http_400} 400s, clients got {self.refused_400}")
        if summary["read_timeouts"]:
            v.append(f"{summary['read_timeouts']} read timeouts")
        if summary["client_disconnects"] > self.outcomes["abandoned"]:
            v.append("the server counted more disconnects than clients made")
        summary["ok"] = not v
        summary["violations"] = v[:20]
        return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", help="a running server (http://127.0.0.1:PORT)")
    ap.add_argument("--pid", type=int, help="the running server's pid (for RSS)")
    ap.add_argument("--kiln", help="start this kiln binary instead")
    ap.add_argument("--serve-args", default="", help="extra `kiln serve` arguments")
    ap.add_argument("--model-id", default=None, help="model name in requests (default: /v1/models)")
    add_run_args(ap, "--streams", "client threads")
    args = ap.parse_args()
    proc = None
    if args.kiln:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [args.kiln, "serve", "-m", args.model, "--port", str(port), *args.serve_args.split()]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = ""
        start = time.time()
        while time.time() - start < 120 and proc.poll() is None:
            line = proc.stdout.readline()
            if line.startswith("listening on"):
                break
        if not line.startswith("listening on"):
            proc.kill()
            print(f"soak: kiln serve did not start: {line!r}", file=sys.stderr)
            return 2
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        args.base, args.pid = f"http://127.0.0.1:{port}", proc.pid
    if not args.base:
        ap.error("--base or --kiln is required")
    try:
        summary = Soak(args).run()
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
