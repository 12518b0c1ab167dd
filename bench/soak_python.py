#!/usr/bin/env python3
"""The soak of bench/soak.py against the Python API: kiln.AsyncEngine in this process.

  bench/soak_python.py -m default --tasks 64 --duration 3600

--tasks asyncio tasks send requests back to back until --duration has passed, each request one
scenario of soak.py drawn at random (seeded): a stream read to the end, a stream abandoned
mid-way (aclose), a slow reader, a non-streaming request, n = 2, a JSON-Schema response_format,
a forced tool call, and a request the engine must refuse (BadRequestError naming the field).
Every request is classified (completed / abandoned / refused; anything else is lost), then with
the engine idle the books must balance: the engine finished exactly the requests it accepted,
every KV block is free again (prefix-cache-held blocks aside), no stream waited longer than
--stall-bound between chunks, and this process's RSS grew at most --rss-slack-mb after warm-up
(the first fifth). Prints one JSON object and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import (SCENARIOS, Violation, add_run_args, check_final, InProcessBooks, in_process_report,  # noqa: E402,I001
                  request_body, self_rss_mb as rss_mb)

# The HTTP-only scenarios (connection reuse) are plain streams here.
PY_SCENARIOS = sorted({"stream" if s in ("stream_close", "stream_keepalive") else s
                       for s in SCENARIOS})


class PySoak(InProcessBooks):
    def __init__(self, engine, args):
        super().__init__(args)
        self.engine = engine

    async def stream(self, body: dict, scenario: str, rng: random.Random) -> str:
        kiln = sys.modules["kiln"]
        s = await self.engine.chat.completions.create(**body)
        abandon_after = rng.randint(1, 6) if scenario == "abandon" else None
        n = body.get("n", 1)
        contents, finishes, usage, events = {}, {}, None, 0
        last = time.time()
        try:
            async for chunk in s:
                now = time.time()
                self.gaps.append(now - last)
                last = now
                d = chunk.model_dump()
                events += 1
                if d.get("usage"):
                    usage = d["usage"]
                for ch in d.get("choices") or []:
                    delta = ch.get("delta") or {}
                    contents[ch["index"]] = contents.get(ch["index"], "") + (delta.get("content") or "")
                    if ch.get("finish_reason"):
                        finishes[ch["index"]] = ch["finish_reason"]
                if abandon_after is not None and events >= abandon_after:
                    await s.aclose()
                    return "abandoned"
                if scenario == "slow_reader":
                    await asyncio.sleep(0.05)
        except kiln.KilnError as e:  # the engine ended the request with an error
            raise Violation(f"{scenario}: {type(e).__name__}: {e}")
        if usage is None or usage.get("completion_tokens", 0) <= 0:
            raise Violation(f"{scenario}: no usage chunk")
        check_final(contents, finishes, n, scenario)
        return "completed"

    async def once(self, rng: random.Random) -> None:
        kiln = sys.modules["kiln"]
        scenario = rng.choice(PY_SCENARIOS)
        body = request_body(rng, "stream_close" if scenario == "stream" else scenario,
                            self.engine.model, self.args.max_tokens)
        try:
            if body.get("stream"):
                outcome = await asyncio.wait_for(self.stream(body, scenario, rng),
                                                 self.args.request_bound)
            else:
                r = (await asyncio.wait_for(self.engine.chat.completions.create(**body),
                                            self.args.request_bound)).model_dump()
                finishes = {c["index"]: c["finish_reason"] for c in r["choices"]}
                contents = {c["index"]: c["message"].get("content") or "" for c in r["choices"]}
                if (r.get("usage") or {}).get("completion_tokens", 0) <= 0:
                    raise Violation(f"{scenario}: no usage")
                check_final(contents, finishes, body.get("n", 1), scenario)
                outcome = "completed"
        except kiln.BadRequestError as e:
            if scenario != "bad_request" or not e.param:
                raise Violation(f"{scenario}: BadRequestError {e} (param {e.param})")
            outcome = "refused"
        except kiln.RateLimitError:
            outcome = "refused"
        except asyncio.TimeoutError:
            raise Violation(f"{scenario}: not done within {self.args.request_bound} s")
        self.outcomes[outcome] += 1
        self.by_scenario[scenario] += 1
        if outcome in ("completed", "abandoned"):
            self.accepted += 1

    async def task(self, idx: int) -> None:
        rng = random.Random(self.args.seed * 1000 + idx)
        while time.time() < self.deadline:
            try:
                await self.once(rng)
            except (Violation, ValueError, KeyError, sys.modules["kiln"].KilnError) as e:
                self.violations.append(f"task {idx}: {type(e).__name__}: {e}")
                self.outcomes["lost"] += 1

    async def run(self) -> dict:
        before = self.engine.metrics()
        t0 = time.time()
        self.deadline = t0 + self.args.duration
        tasks = [asyncio.create_task(self.task(i)) for i in range(self.args.tasks)]
        rss, warm = [], None
        while not all(t.done() for t in tasks):
            await asyncio.sleep(1)
            rss.append(rss_mb())
            if warm is None and time.time() - t0 >= self.args.duration / 5:
                warm = rss[-1]
        await asyncio.gather(*tasks)
        idle_deadline = time.time() + 60
        after = self.engine.metrics()
        while (after["running"] or after["queue_length"]) and time.time() < idle_deadline:
            await asyncio.sleep(0.5)
            after = self.engine.metrics()
        return in_process_report(self, t0, ("tasks", self.args.tasks), before, after, warm,
                                 rss_mb(), rss)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_args(ap, "--tasks", "asyncio tasks")
    ap.add_argument("--mode", default="server")
    ap.add_argument("--max-sequences", type=int, default=0)
    ap.add_argument("--max-context", type=int, default=2048)
    ap.add_argument("--request-bound", type=float, default=300)
    args = ap.parse_args()
    import kiln
    overrides = {"max_context": args.max_context}
    if args.max_sequences:
        overrides["max_sequences"] = args.max_sequences
    with kiln.AsyncEngine(args.model, mode=args.mode, max_waiters=max(256, 4 * args.tasks),
                          **overrides) as engine:
        summary = asyncio.run(PySoak(engine, args).run())
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
