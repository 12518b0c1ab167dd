"""`kiln serve` under stress from the outside: a cold ~2,000-token prompt arriving while a stream
decodes (chunked prefill keeps the stream going), SIGTERM in the middle of a long prefill (the
server stops accepting at once, ends streams with a final event, exits within seconds), clients
that send a request a byte at a time (slowloris: 408 after --read-timeout), more connections
than --max-connections (503), and malformed HTTP (a hostile-request corpus: 400 / 431, the
connection closed). Everything on 127.0.0.1, every socket with its own timeout."""

from __future__ import annotations

import json
import math
import signal
import socket
import threading
import time

from test_server_util import Server, get, metrics, post, running_server, stream_lines, validate

COLD_WORDS = 520  # "w0 w1 … w519": about 1,970 tokens with SmolLM2's tokenizer (checked below)
CHUNK = 256


def cold_prompt() -> str:
    return " ".join(f"w{i}" for i in range(COLD_WORDS))


class Streamer(threading.Thread):
    """A long greedy stream; records when each data event arrives and the raw lines."""

    def __init__(self, srv: Server, max_tokens: int = 1000):
        super().__init__(daemon=True)
        self.srv, self.max_tokens = srv, max_tokens
        self.stamps: list[float] = []
        self.lines: list[str] = []
        self.ended = threading.Event()

    def run(self) -> None:
        body = {"model": self.srv.model_id, "stream": True, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": "Tell a long story about a lighthouse."}],
                "ignore_eos": True, "temperature": 0}
        try:
            it = stream_lines(self.srv.base, "/v1/chat/completions", body, timeout=120)
            status, _ = next(it)
            assert status == 200
            for line in it:
                self.lines.append(line)
                if line.startswith("data:"):
                    self.stamps.append(time.time())
        except OSError:
            pass  # the test closes the server or the stream
        finally:
            self.ended.set()

    def wait_tokens(self, n: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while len(self.stamps) < n and time.time() < deadline and not self.ended.is_set():
            time.sleep(0.01)
        assert len(self.stamps) >= n, f"stream produced {len(self.stamps)} events"


def test_cold_prompt_is_prefilled_in_chunks_between_decodes():
    with running_server("--prefill-chunk", str(CHUNK), "-t", "2") as srv:
        s = Streamer(srv)
        s.start()
        s.wait_tokens(10)
        t_sent = time.time()
        r = post(srv.base, "/v1/completions", {"model": srv.model_id, "prompt": cold_prompt(),
                                                "max_tokens": 1}, timeout=600)
        t_done = time.time()
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        n_prompt = usage["prompt_tokens"]
        assert n_prompt >= 1800 and usage["prompt_tokens_details"]["cached_tokens"] == 0, usage
        during = [t for t in s.stamps if t_sent <= t <= t_done]
        edges = [t_sent] + during + [t_done]
        worst_gap = max(b - a for a, b in zip(edges, edges[1:]))
        before = [b - a for a, b in zip(s.stamps, s.stamps[1:]) if b < t_sent]
        n_chunks = math.ceil(n_prompt / CHUNK)
        total = t_done - t_sent
        print(f"\ncold prompt {n_prompt} tokens in {total:.2f} s ({n_chunks} chunks of {CHUNK}); "
              f"stream events meanwhile {len(during)}; worst inter-token gap {worst_gap:.2f} s "
              f"(median before {sorted(before)[len(before) // 2] * 1000:.0f} ms)")
        # One decode per step while the prompt is prefilled a chunk per step: the stream keeps
        # producing, and no gap comes near the whole prefill (as it would if one step did it all).
        assert len(during) >= n_chunks - 2, (len(during), n_chunks)
        assert worst_gap < total / 3, (worst_gap, total)
        post(srv.base, "/v1/completions", {"model": srv.model_id, "prompt": "x", "max_tokens": 1})


def test_sigterm_in_the_middle_of_a_long_prefill_exits_promptly():
    grace = 1
    # One step prefills the whole cold prompt (several seconds on 2 threads): only an engine
    # step that stops between layers lets the server exit quickly.
    srv = Server("--prefill-chunk", "2048", "--shutdown-grace", str(grace), "-t", "2")
    try:
        s = Streamer(srv)
        s.start()
        s.wait_tokens(5)
        cold: dict = {}

        def send_cold():
            try:
                r = post(srv.base, "/v1/completions", {"model": srv.model_id,
                                                        "prompt": cold_prompt(), "max_tokens": 1},
                         timeout=120)
                cold["status"], cold["body"] = r.status_code, r.json()
            except OSError as e:
                cold["error"] = repr(e)

        c = threading.Thread(target=send_cold, daemon=True)
        c.start()
        time.sleep(1.0)  # the engine is inside the cold prompt's step
        n_before = len(s.stamps)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = False
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        except ConnectionRefusedError:
            refused = True
        code = srv.proc.wait(timeout=60)
        took = time.time() - t0
        c.join(timeout=30)
        s.ended.wait(timeout=30)
        print(f"\nSIGTERM mid-prefill: exit code {code} after {took:.2f} s (grace {grace} s); "
              f"stream events between cold submit and SIGTERM: {len(s.stamps) - n_before}")
        assert code == 0, srv.proc.stderr.read()[-2000:]
        assert refused, "still accepting connections 0.3 s after SIGTERM"
        assert took < grace + 4, took
        # The stream got a final event naming the shutdown, then [DONE].
        datas = [x[len("data: "):] for x in s.lines if x.startswith("data: ")]
        assert datas and datas[-1] == "[DONE]", s.lines[-5:]
        last = json.loads(datas[-2])
        assert last["error"]["code"] == "server_shutdown", last
        assert cold.get("status") == 503 and cold["body"]["error"]["code"] == "server_shutdown", cold
    finally:
        srv.stop()


def read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(4096):
            out += chunk
    except (ConnectionResetError, TimeoutError, socket.timeout):
        pass
    return out


def test_slowloris_gets_408_and_connection_limit_gets_503():
    with running_server("--read-timeout", "2", "--max-connections", "4") as srv:
        # Headers one byte every 0.1 s: never complete within the 2 s read timeout.
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        t0, sent = time.time(), 0
        try:
            while sent < len(head) and time.time() - t0 < 8:
                sock.sendall(head[sent:sent + 1])
                sent += 1
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_until_closed(sock)
        waited = time.time() - t0
        sock.close()
        assert sent < len(head), "the server read the whole trickle"
        assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
        assert b'"request_timeout"' in reply
        assert 1.8 < waited < 5, waited
        assert metrics(srv.base)["kiln_http_request_read_timeouts_total"] == 1

        # The connections used so far (the trickle, the metrics queries) must be gone before
        # the four idle ones take every worker: wait until only the query itself is open,
        # then give that one time to close.
        deadline = time.time() + 20
        while metrics(srv.base)["kiln_http_connections"] > 1 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)
        # Four idle connections hold the four workers: the fifth is answered 503 at once.
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(4)]
        time.sleep(0.3)
        over = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        over.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = read_until_closed(over)
        over.close()
        assert reply.startswith(b"HTTP/1.1 503 "), reply[:200]
        assert b'"too_many_connections"' in reply
        for s in idle:
            s.close()
        time.sleep(0.5)
        m = metrics(srv.base)
        assert m["kiln_http_connections_rejected_total"] == 1, m
        ok = post(srv.base, "/v1/chat/completions",
                  {"model": srv.model_id, "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": 2})
        assert ok.status_code == 200


def bound_socket(port: int) -> socket.socket:
    """A client socket bound to a local port of our choosing (0: any), SO_REUSEADDR."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(30)
    s.bind(("127.0.0.1", port))
    return s


def raw_post(sock: socket.socket, body: dict) -> None:
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Content-Type: application/json\r\nContent-Length: " + str(len(data)).encode()
                 + b"\r\n\r\n" + data)


def test_client_port_reuse_does_not_cut_a_stream():
    """Issue #22's recipe: a request with Connection: close read to the end, then at once a new
    connection from the same client port with a long stream. The watchdog knew connections by
    the peer's port, took the stream for a request still being read and, after --read-timeout,
    wrote a 408 into the middle of it. Three rounds, each far longer than the read timeout."""
    with running_server("--read-timeout", "1") as srv:
        msgs = [{"role": "user", "content": "Tell a long story about a lighthouse."}]
        for _ in range(3):
            first = bound_socket(0)
            port = first.getsockname()[1]
            first.connect(("127.0.0.1", srv.port))
            time.sleep(0.5)  # a watchdog scan sees this connection
            raw_post(first, {"model": srv.model_id, "messages": msgs, "max_tokens": 2})
            reply = read_until_closed(first)
            first.close()
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
            second = bound_socket(port)
            second.connect(("127.0.0.1", srv.port))
            t0 = time.time()
            raw_post(second, {"model": srv.model_id, "messages": msgs, "max_tokens": 1500,
                              "ignore_eos": True, "stream": True, "temperature": 0})
            reply = read_until_closed(second)
            second.close()
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
            assert b"HTTP/1.1 408" not in reply, reply[-400:]
            assert b"data: [DONE]" in reply, reply[-400:]
            assert time.time() - t0 > 1.5, "the stream must outlast the read timeout"
        m = metrics(srv.base)
        assert m["kiln_http_request_read_timeouts_total"] == 0
        assert m["kiln_http_client_disconnects_total"] == 0


def exchange_until_closed(port: int, data: bytes) -> tuple[bytes, float]:
    """Sends data on a new connection; what comes back until the server closes it, and when."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        t0 = time.time()
        sock.sendall(data)
        reply = read_until_closed(sock)
        return reply, time.time() - t0


def test_malformed_http_is_refused_and_the_connection_closed():
    """#22's hostile-request corpus: the HTTP library before Boost.Beast (cpp-httplib 0.11)
    dropped a field line without a colon and answered 200. Each request below asks for
    keep-alive; each must get its status with an OpenAI-shaped error and the connection
    closed at once (well before --idle-timeout), and the server keeps serving."""
    head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
    corpus = [
        (head + b"X-A: a\r\nNoColonHere\r\n\r\n", 400, "malformed_header"),
        (head + b"no colon at all\r\n\r\n", 400, "malformed_header"),
        (head + b"X-A: a\r\n folded\r\n\r\n", 400, "malformed_header"),
        (head + b"X-A: a\r\n\tfolded\r\n\r\n", 400, "malformed_header"),
        (head + b"X-A: a\x00b\r\n\r\n", 400, "malformed_header"),
        (head + b"X-A: a\x7fb\r\n\r\n", 400, "malformed_header"),
        (head + b"Bad Name: v\r\n\r\n", 400, "malformed_header"),
        (b"GET /v1/models HTTP/1.x\r\nHost: x\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/models HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/models\r\nHost: x\r\n\r\n", 400, "malformed_request"),
        (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "malformed_request"),
        (head + b"".join(b"X-%d: v\r\n" % i for i in range(3000)) + b"\r\n", 431,
         "request_header_fields_too_large"),
        (head + b"X-Big: " + b"a" * (100 << 10) + b"\r\n\r\n", 431, "request_header_fields_too_large"),
    ]
    with running_server("--idle-timeout", "5") as srv:
        before = metrics(srv.base)
        for data, status, code in corpus:
            reply, took = exchange_until_closed(srv.port, data)
            what = data[:60]
            assert reply.startswith(b"HTTP/1.1 %d " % status), (what, reply[:200])
            header, _, body = reply.partition(b"\r\n\r\n")
            assert b"\r\nConnection: close" in header, (what, header)
            error = json.loads(body)
            validate("ErrorResponse", error)
            assert error["error"]["code"] == code, (what, error)
            assert took < 2, (what, took)
            assert srv.alive()
        after = metrics(srv.base)
        n_400 = sum(1 for _, status, _ in corpus if status == 400)
        key = 'kiln_http_responses_total{code="400"}'
        assert after.get(key, 0) - before.get(key, 0) == n_400
        # A well-formed request on a kept-alive connection still works, twice on one socket.
        reply, _ = exchange_until_closed(
            srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.count(b"HTTP/1.1 200 ") == 2, reply
        assert get(srv.base, "/health").status_code == 200
