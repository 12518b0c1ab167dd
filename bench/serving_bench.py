#!/usr/bin/env python3
"""Serving benchmark: kiln serve vs llama.cpp's OpenAI server, on the same GGUF and threads.

  python3 bench/serving_bench.py -m MODEL.gguf [--kiln build/kiln] [--llama-python PY]
      [-t 2] [--streams 1,4,16] [--gen 64] [--prompt-tokens 64] [--rounds 2]
      [--prefix-tokens 2000] [--json-out FILE] [--only throughput,prefix,frag]
      [--engines kiln,llama,node]

Workloads (docs/performance.md, "Serving"; /work/shared/BENCHMARKS.md):
  throughput  S concurrent streaming /v1/completions requests (S in --streams), each a distinct
              prompt of --prompt-tokens tokens and exactly --gen generated tokens (greedy; the
              end-of-text tokens are banned with logit_bias so every request runs to max_tokens).
              Aggregate tokens/s = S * gen / wall time from the first request sent to the last
              token received; the server's CPU time over the round (/proc/PID/stat) gives
              tokens per CPU-second, the figure that survives a shared machine; TTFT and inter-token latency (ITL) p50/p99 from the client's
              timestamps of the SSE chunks. The engines alternate per round: kiln, llama.cpp,
              kiln, llama.cpp ... (each server started once per round and stopped after it).
  prefix      TTFT of a request whose --prefix-tokens-token prefix is cached vs the same request
              cold: for each round a fresh prefix (a different slice of wikitext), request A =
              prefix + question 1 (cold: nothing shared), then B = prefix + question 2 (the
              prefix is cached by A). max_tokens 1. Ratio = TTFT(B) / TTFT(A).
  frag        kiln only: a mixed workload (prompts 30-1500 tokens, generations 8-200 tokens, 16
              concurrent, 48 requests); KV fragmentation = unfilled slots / allocated slots of
              used KV blocks, averaged over engine steps (/metrics counters
              kiln_kv_slot_steps_{unfilled,allocated}_total, difference over the run) and its
              maximum as sampled every 50 ms from kiln_kv_fragmentation_ratio.

Engines: "kiln" (kiln serve), "llama" (llama_cpp.server, below), "node" (llama.cpp through npm
node-llama-cpp with one context of S parallel sequences, bench/serving_llama_node.mjs: no HTTP,
throughput workload only, the same prompts).
The "llama" side is `python -m llama_cpp.server` from PyPI llama-cpp-python (built from
source into a venv, see docs/performance.md) with --n_threads T --n_threads_batch T; its
server serves one request at a time (no continuous batching), which is what it is.
Only the loopback address is used. Each server is stopped at the end of its round.
"""
import argparse
import http.client
import json
import os
import pathlib
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
WIKITEXT = REPO.parent / "shared" / "data" / "wikitext-2-raw" / "wiki.test.raw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on 127.0.0.1 (kiln or llama_cpp.server)."""

    def __init__(self, kind: str, args, n_ctx: int):
        self.kind = kind
        self.port = free_port()
        if kind == "kiln":
            cmd = [args.kiln, "serve", "-m", args.model, "--port", str(self.port),
                   "-t", str(args.threads), "--max-context", str(n_ctx),
                   "--max-sequences", str(max(args.stream_list + [16]))]
            if args.kiln_kv_mb:
                cmd += ["--kv-memory", str(args.kiln_kv_mb)]
        else:
            cmd = [args.llama_python, "-m", "llama_cpp.server", "--model", args.model,
                   "--host", "127.0.0.1", "--port", str(self.port),
                   "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
                   "--n_ctx", str(n_ctx), "--n_batch", "512", "--verbose", "False",
                   # Its default lets a new request cut off the one being served; queue instead.
                   "--interrupt_requests", "False"]
        self.log = open(f"/tmp/serving_bench_{kind}_{self.port}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{kind} server exited; see {self.log.name}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v1/models")
                r = c.getresponse()
                body = json.loads(r.read())
                if r.status == 200:
                    self.model_id = body["data"][0]["id"]
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        self.stop()
        sys.exit(f"{kind} server did not come up")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def cpu_s(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def get(self, path: str) -> str:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", path)
        return c.getresponse().read().decode()

    def complete(self, prompt, max_tokens: int, ban: dict) -> dict:
        """Streams one completion; returns send time, chunk arrival times and finish reason."""
        body = {"model": self.model_id, "prompt": prompt, "max_tokens": max_tokens,
                "temperature": 0, "stream": True, "logit_bias": ban}
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0 = time.perf_counter()
        c.request("POST", "/v1/completions", json.dumps(body),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"{self.kind}: HTTP {r.status}: {r.read()[:300]!r}")
        times, finish, text = [], None, ""
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            ev = json.loads(data)
            ch = ev["choices"][0] if ev.get("choices") else {}
            if ch.get("text"):
                times.append(time.perf_counter())
                text += ch["text"]
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
        return {"t0": t0, "times": times, "finish": finish, "text": text}


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def wiki_words() -> list[str]:
    return WIKITEXT.read_text(encoding="utf-8").split()


def prompt_of(words, start: int, n_words: int) -> str:
    start %= len(words) - n_words
    return " ".join(words[start:start + n_words])


def run_concurrent(server: Server, prompts, gen: int, ban: dict):
    results = [None] * len(prompts)
    errors = []

    def worker(i):
        try:
            results[i] = server.complete(prompts[i], gen, ban)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_end = time.perf_counter()
    if errors:
        raise RuntimeError(errors[0])
    return results, t_end - t_start


def throughput_round(server: Server, args, words, streams: int, salt: int, ban: dict) -> dict:
    # ~0.75 words per token for English wikitext with a BPE vocabulary.
    n_words = max(4, int(args.prompt_tokens * 0.75))
    prompts = [prompt_of(words, 1000 + (salt * 97 + i) * 211, n_words) for i in range(streams)]
    cpu0 = server.cpu_s()
    results, wall = run_concurrent(server, prompts, args.gen, ban)
    cpu = server.cpu_s() - cpu0
    ttft = [(r["times"][0] - r["t0"]) * 1000 for r in results if r["times"]]
    itl = []
    n_chunks = 0
    for r in results:
        n_chunks += len(r["times"])
        itl += [(b - a) * 1000 for a, b in zip(r["times"], r["times"][1:])]
    bad = [r["finish"] for r in results if r["finish"] != "length"]
    if bad:
        raise RuntimeError(f"{server.kind}: finish reasons {bad} (expected length)")
    tokens = streams * args.gen
    return {"streams": streams, "wall_s": wall, "tok_s": tokens / wall, "chunks": n_chunks,
            "cpu_s": cpu, "tok_per_cpu_s": tokens / cpu if cpu > 0 else float("nan"),
            "ttft_p50": pct(ttft, 50), "ttft_p99": pct(ttft, 99),
            "itl_p50": pct(itl, 50), "itl_p99": pct(itl, 99)}


def prefix_round(server: Server, args, words, salt: int, ban: dict) -> dict:
    n_words = int(args.prefix_tokens * 0.75)
    base = 20000 + salt * 5000 + (0 if server.kind == "kiln" else 2500)
    prefix = prompt_of(words, base, n_words)
    a = server.complete(prefix + "\n\nQuestion: what is this text about?\nAnswer:", 1, ban)
    b = server.complete(prefix + "\n\nQuestion: who is mentioned first?\nAnswer:", 1, ban)
    ta = (a["times"][0] - a["t0"]) * 1000 if a["times"] else float("nan")
    tb = (b["times"][0] - b["t0"]) * 1000 if b["times"] else float("nan")
    return {"cold_ms": ta, "cached_ms": tb, "ratio": tb / ta}


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def frag_run(server: Server, args, words, ban: dict) -> dict:
    rng = random.Random(5)
    jobs = []
    for i in range(48):
        n_words = int(rng.choice([30, 80, 200, 400, 800, 1500]) * 0.75)
        jobs.append((prompt_of(words, 60000 + i * 1733, n_words), rng.choice([8, 32, 64, 128, 200])))
    before = server.get("/metrics")
    peak, samples, stop = [0.0], [], [False]

    def sampler():
        while not stop[0]:
            v = metric(server.get("/metrics"), "kiln_kv_fragmentation_ratio")
            if v == v:
                samples.append(v)
                peak[0] = max(peak[0], v)
            time.sleep(0.05)

    th = threading.Thread(target=sampler)
    th.start()
    sem = threading.Semaphore(16)
    errors = []

    def worker(p, g):
        with sem:
            try:
                server.complete(p, g, ban)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=j) for j in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop[0] = True
    th.join()
    if errors:
        raise RuntimeError(errors[0])
    after = server.get("/metrics")
    d = {k: metric(after, k) - metric(before, k)
         for k in ("kiln_kv_slot_steps_unfilled_total", "kiln_kv_slot_steps_allocated_total")}
    mean = d["kiln_kv_slot_steps_unfilled_total"] / d["kiln_kv_slot_steps_allocated_total"]
    return {"requests": len(jobs), "mean_frag": mean, "max_frag_sampled": peak[0],
            "samples": len(samples), "kv_blocks_used_after": metric(after, "kiln_kv_blocks_used"),
            "kv_blocks_cached_after": metric(after, "kiln_kv_blocks_cached")}


def node_round(args, streams: int, salt: int) -> dict:
    cmd = ["node", str(REPO / "bench" / "serving_llama_node.mjs"), "-m", args.model,
           "-t", str(args.threads), "--streams", str(streams), "--gen", str(args.gen),
           "--prompt-words", str(max(4, int(args.prompt_tokens * 0.75))), "--salt", str(salt)]
    env = dict(os.environ, NODE_LLAMA_CPP_SKIP_DOWNLOAD="true")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"node peer failed: {p.stderr[-500:]}")
    return json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])


def eos_ban(server: Server) -> dict:
    """logit_bias banning the special tokens that end a completion (SmolLM2 vocabulary ids)."""
    return {str(t): -100 for t in (0, 1, 2)}  # SmolLM2/starcoder vocab: <|endoftext|>, <|im_start|>, <|im_end|>


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--kiln", default=str(REPO / "build" / "kiln"))
    ap.add_argument("--llama-python", default=str(REPO / ".deps" / "llamacpp-venv" / "bin" / "python"))
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--streams", default="1,4,16")
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prefix-tokens", type=int, default=2000)
    ap.add_argument("--kiln-kv-mb", type=int, default=0)
    ap.add_argument("--only", default="throughput,prefix,frag")
    ap.add_argument("--engines", default="kiln,llama")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    args.stream_list = [int(s) for s in args.streams.split(",")]
    only = set(args.only.split(","))
    engines = args.engines.split(",")
    words = wiki_words()
    out = {"model": args.model, "threads": args.threads, "gen": args.gen,
           "prompt_tokens": args.prompt_tokens, "load_start": open("/proc/loadavg").read().split()[0],
           "throughput": [], "prefix": [], "frag": None}
    n_ctx = max(4096, args.prefix_tokens + 512)
    for rnd in range(args.rounds):
        for kind in engines:
            if kind == "node":  # llama.cpp with parallel sequences, no HTTP (throughput only)
                for s in args.stream_list:
                    r = node_round(args, s, rnd * 10 + s)
                    r.update(engine=kind, round=rnd)
                    out["throughput"].append(r)
                    print(json.dumps(r), flush=True)
                continue
            srv = Server(kind, args, n_ctx)
            try:
                ban = eos_ban(srv)
                # warm-up: page in the weights, first-call costs
                srv.complete(prompt_of(words, 10, 20), 4, ban)
                if "throughput" in only:
                    for s in args.stream_list:
                        r = throughput_round(srv, args, words, s, rnd * 10 + s, ban)
                        r.update(engine=kind, round=rnd)
                        out["throughput"].append(r)
                        print(json.dumps(r), flush=True)
                if "prefix" in only:
                    r = prefix_round(srv, args, words, rnd, ban)
                    r.update(engine=kind, round=rnd)
                    out["prefix"].append(r)
                    print(json.dumps(r), flush=True)
                if "frag" in only and kind == "kiln" and rnd == 0:
                    out["frag"] = frag_run(srv, args, words, ban)
                    print(json.dumps(out["frag"]), flush=True)
            finally:
                srv.stop()
    out["load_end"] = open("/proc/loadavg").read().split()[0]
    print_table(out, engines)
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(out, indent=1))


def print_table(out, engines):
    print(f"\nmodel {out['model']}, {out['threads']} threads, prompt ~{out['prompt_tokens']} "
          f"tokens, {out['gen']} generated per stream; load {out['load_start']} -> {out['load_end']}")
    rows = {}
    for r in out["throughput"]:
        rows.setdefault(r["streams"], {}).setdefault(r["engine"], []).append(r)
    if rows:
        print("| streams | engine | agg tok/s (median, min-max) | tok per CPU-s | TTFT p50 / p99 ms | ITL p50 / p99 ms |")
        print("|---|---|---|---|---|---|")
        for s in sorted(rows):
            for e in engines:
                rs = rows[s].get(e, [])
                if not rs:
                    continue
                tps = [r["tok_s"] for r in rs]
                med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
                cpu = [r.get("tok_per_cpu_s", float("nan")) for r in rs]
                print(f"| {s} | {e} | {statistics.median(tps):.1f} ({min(tps):.1f}-{max(tps):.1f}) | "
                      f"{statistics.median(cpu):.1f} | "
                      f"{med('ttft_p50'):.0f} / {med('ttft_p99'):.0f} | {med('itl_p50'):.0f} / {med('itl_p99'):.0f} |")
            for peer in ("llama", "node"):
                if "kiln" in rows[s] and peer in rows[s]:
                    ratios = [a["tok_s"] / b["tok_s"] for a, b in zip(rows[s]["kiln"], rows[s][peer])]
                    cr = [a.get("tok_per_cpu_s", float("nan")) / b.get("tok_per_cpu_s", float("nan"))
                          for a, b in zip(rows[s]["kiln"], rows[s][peer])]
                    print(f"|  | kiln/{peer} | {statistics.median(ratios):.2f} "
                          f"({min(ratios):.2f}-{max(ratios):.2f}) | {statistics.median(cr):.2f} | | |")
    for e in engines:
        ps = [p for p in out["prefix"] if p["engine"] == e]
        if ps:
            print(f"prefix {e}: cold TTFT {statistics.median(p['cold_ms'] for p in ps):.0f} ms, cached "
                  f"{statistics.median(p['cached_ms'] for p in ps):.0f} ms, ratio "
                  f"{statistics.median(p['ratio'] for p in ps):.3f} (per round: "
                  + ", ".join(f"{p['ratio']:.3f}" for p in ps) + ")")
    if out["frag"]:
        f = out["frag"]
        print(f"fragmentation (kiln, {f['requests']} mixed requests): mean {100 * f['mean_frag']:.2f} %, "
              f"max sampled {100 * f['max_frag_sampled']:.2f} %")


if __name__ == "__main__":
    main()
