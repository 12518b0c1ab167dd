#!/usr/bin/env python3
"""The soak of bench/soak.py against the C API: libkiln.so through ctypes (no header).

  bench/soak_capi.py --lib build/libkiln.so -m default --threads 64 --duration 3600

--threads OS threads (ctypes releases the GIL in every call) send requests back to back until
--duration has passed, each request one scenario of soak.py drawn at random (seeded): a stream
read to the end with kiln_request_next, a stream abandoned mid-way (kiln_request_cancel then
destroy, or destroy alone), a slow reader, a non-streaming request, n = 2, a JSON-Schema
response_format, a forced tool call, and a request the engine must refuse (kiln_request_create
fails and the error object's "param" names the field). Every request is classified (completed
/ abandoned / refused; anything else is lost), then with the engine idle the books must balance
on kiln_engine_metrics: the engine finished exactly the requests it accepted, every KV block is
free again (prefix-cache-held blocks aside), no stream waited longer than --stall-bound between
chunks, and this process's RSS grew at most --rss-slack-mb after warm-up (the first fifth).
Prints one JSON object and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import (SCENARIOS, Violation, add_run_args, check_final, InProcessBooks, in_process_report,  # noqa: E402,I001
                  request_body, self_rss_mb as rss_mb)

# The HTTP-only scenarios (connection reuse) are plain streams here.
C_SCENARIOS = sorted({"stream" if s in ("stream_close", "stream_keepalive") else s
                      for s in SCENARIOS})
CHAT = 0
OK, DONE, TIMEOUT = 0, 1, 2
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNIMPLEMENTED, CANCELLED = 10, 13, 14, 16


def load_lib(path: str) -> ctypes.CDLL:
    """libkiln.so with the signatures of kiln.h (as tests/py/test_capi.py binds them)."""
    lib = ctypes.CDLL(path)
    vp, c, p = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER
    sigs = {
        "kiln_last_error": (c, []),
        "kiln_last_error_json": (c, []),
        "kiln_status_name": (c, [ctypes.c_int]),
        "kiln_free": (None, [vp]),
        "kiln_engine_create": (ctypes.c_int, [c, c, p(vp)]),
        "kiln_engine_destroy": (None, [vp]),
        "kiln_engine_info": (ctypes.c_int, [vp, p(vp)]),
        "kiln_engine_metrics": (ctypes.c_int, [vp, p(vp)]),
        "kiln_request_create": (ctypes.c_int, [vp, ctypes.c_int, c, p(vp)]),
        "kiln_request_next": (ctypes.c_int, [vp, ctypes.c_int32, p(c)]),
        "kiln_request_cancel": (ctypes.c_int, [vp]),
        "kiln_request_destroy": (None, [vp]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class CError(Exception):
    def __init__(self, lib, status: int):
        self.status = status
        self.name = lib.kiln_status_name(status).decode()
        text = lib.kiln_last_error_json().decode()  # this thread's last call's error
        self.error = (json.loads(text) if text else {}).get("error") or {}
        super().__init__(f"{self.name}: {lib.kiln_last_error().decode()}")


class CSoak(InProcessBooks):
    def __init__(self, lib, engine, model_id: str, args):
        super().__init__(args)
        self.lib, self.engine, self.model_id = lib, engine, model_id
        self.lock = threading.Lock()

    def _json(self, fn) -> dict:
        out = ctypes.c_void_p()
        status = fn(self.engine, ctypes.byref(out))
        if status != OK:
            raise CError(self.lib, status)
        try:
            return json.loads(ctypes.string_at(out.value).decode())
        finally:
            self.lib.kiln_free(out)

    def metrics(self) -> dict:
        return self._json(self.lib.kiln_engine_metrics)

    def read(self, req, body: dict, scenario: str, rng: random.Random, gaps: list) -> str:
        """Reads the request's items until KILN_DONE (or abandons it); returns the outcome."""
        lib = self.lib
        stream, n = bool(body.get("stream")), body.get("n", 1)
        abandon_after = rng.randint(1, 6) if scenario == "abandon" else None
        contents, finishes, usage, items = {}, {}, None, 0
        item = ctypes.c_char_p()
        bound = time.time() + self.args.request_bound
        last = time.time()
        while True:
            status = lib.kiln_request_next(req, 1000, ctypes.byref(item))
            if status == TIMEOUT:
                if time.time() > bound:
                    raise Violation(f"{scenario}: not done within {self.args.request_bound} s")
                continue
            if status == DONE:
                break
            if status != OK:  # the engine ended the request with an error
                raise Violation(f"{scenario}: kiln_request_next: {CError(lib, status)}")
            now = time.time()
            gaps.append(now - last)
            last = now
            d = json.loads(item.value.decode())
            items += 1
            if not stream and items > 1:
                raise Violation(f"{scenario}: a second whole response")
            if d.get("usage"):
                usage = d["usage"]
            for ch in d.get("choices") or []:
                if stream:
                    delta = ch.get("delta") or {}
                    text = delta.get("content") or ""
                else:
                    text = (ch.get("message") or {}).get("content") or ""
                contents[ch["index"]] = contents.get(ch["index"], "") + text
                if ch.get("finish_reason"):
                    finishes[ch["index"]] = ch["finish_reason"]
            if abandon_after is not None and items >= abandon_after:
                if rng.random() < 0.5:  # cancel, then the next call says so (or DONE: it ended)
                    if lib.kiln_request_cancel(req) != OK:
                        raise Violation(f"abandon: kiln_request_cancel: {lib.kiln_last_error()}")
                    while (status := lib.kiln_request_next(req, 1000, ctypes.byref(item))) == OK:
                        pass
                    if status not in (CANCELLED, DONE):
                        raise Violation(f"abandon: after cancel: {CError(lib, status)}")
                return "abandoned"  # the caller destroys it (destroy alone cancels)
            if scenario == "slow_reader":
                time.sleep(0.05)
        if usage is None or usage.get("completion_tokens", 0) <= 0:
            raise Violation(f"{scenario}: no usage")
        check_final(contents, finishes, n, scenario)
        return "completed"

    def once(self, rng: random.Random, gaps: list) -> None:
        scenario = rng.choice(C_SCENARIOS)
        body = request_body(rng, "stream_close" if scenario == "stream" else scenario,
                            self.model_id, self.args.max_tokens)
        req = ctypes.c_void_p()
        status = self.lib.kiln_request_create(self.engine, CHAT, json.dumps(body).encode(),
                                              ctypes.byref(req))
        if status == OK:
            try:
                outcome = self.read(req, body, scenario, rng, gaps)
            finally:
                self.lib.kiln_request_destroy(req)
        elif status in (INVALID_ARGUMENT, UNIMPLEMENTED):
            err = CError(self.lib, status)
            if scenario != "bad_request" or not err.error.get("param"):
                raise Violation(f"{scenario}: refused: {err} (param {err.error.get('param')})")
            outcome = "refused"
        elif status == RESOURCE_EXHAUSTED:  # load shedding
            outcome = "refused"
        else:
            raise Violation(f"{scenario}: kiln_request_create: {CError(self.lib, status)}")
        if scenario == "bad_request" and outcome != "refused":
            raise Violation(f"bad_request: accepted {body}")
        with self.lock:
            self.outcomes[outcome] += 1
            self.by_scenario[scenario] += 1
            if outcome in ("completed", "abandoned"):
                self.accepted += 1

    def thread(self, idx: int) -> None:
        rng = random.Random(self.args.seed * 1000 + idx)
        gaps: list[float] = []
        while time.time() < self.deadline:
            try:
                self.once(rng, gaps)
            except (Violation, ValueError, KeyError, CError) as e:
                with self.lock:
                    self.violations.append(f"thread {idx}: {type(e).__name__}: {e}")
                    self.outcomes["lost"] += 1
        with self.lock:
            self.gaps.extend(gaps)

    def run(self) -> dict:
        before = self.metrics()
        t0 = time.time()
        self.deadline = t0 + self.args.duration
        threads = [threading.Thread(target=self.thread, args=(i,), daemon=True)
                   for i in range(self.args.threads)]
        for t in threads:
            t.start()
        rss, warm = [], None
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            rss.append(rss_mb())
            if warm is None and time.time() - t0 >= self.args.duration / 5:
                warm = rss[-1]
        idle_deadline = time.time() + 60
        after = self.metrics()
        while (after["running"] or after["queue_length"] or
               after["kv_blocks_used"] != after["kv_blocks_cached"]) and \
                time.time() < idle_deadline:
            time.sleep(0.5)
            after = self.metrics()
        return in_process_report(self, t0, ("threads", self.args.threads), before, after, warm,
                                 rss_mb(), rss)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_args(ap, "--threads", "OS threads")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--lib", default=os.path.join(os.environ.get(
        "KILN_BUILD_DIR", os.path.join(root, "build")), "libkiln.so"))
    ap.add_argument("--mode", default="server")
    ap.add_argument("--max-sequences", type=int, default=0)
    ap.add_argument("--max-context", type=int, default=2048)
    ap.add_argument("--request-bound", type=float, default=300)
    args = ap.parse_args()
    lib = load_lib(args.lib)
    options = {"mode": args.mode, "context": args.max_context}
    if args.max_sequences:
        options["max_sequences"] = args.max_sequences
    engine = ctypes.c_void_p()
    status = lib.kiln_engine_create(args.model.encode(), json.dumps(options).encode(),
                                    ctypes.byref(engine))
    if status != OK:
        print(f"kiln_engine_create: {CError(lib, status)}", file=sys.stderr)
        return 2
    try:
        soak = CSoak(lib, engine, "", args)
        soak.model_id = soak._json(lib.kiln_engine_info)["model_id"]
        summary = soak.run()
    finally:
        lib.kiln_engine_destroy(engine)
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
