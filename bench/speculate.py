#!/usr/bin/env python3
"""Speculative decoding benchmark (#15): speculation off vs auto vs lookup, side by side.

  python3 bench/speculate.py [-m MODEL.gguf ...] [--kiln build/kiln] [-n 160] [--reps 3]
      [--modes off,auto,lookup] [--streams 16] [--stream-gen 64] [--only single,concurrent]
      [--draft DRAFT.gguf] [--peer node [--peer-threads 2]]

single      `kiln run --chat --temp 0 --json` per prompt and mode, --reps times (alternating
            modes within each rep); the figure is the median generation speed (tokens/s after
            the first token, from the run's own timings). The outputs of every mode must be
            identical token for token (speculation never changes the answer): the script fails
            otherwise.
concurrent  `kiln serve --speculate MODE`, --streams concurrent non-streaming chat requests
            (the prompts, in turn, each --stream-gen tokens, greedy, end-of-text banned);
            aggregate completion tokens / wall seconds.

--draft     adds kiln's `draft` mode (`--speculate draft --draft DRAFT`; the other modes run
            without a draft model, so `auto` keeps meaning prompt lookup).
--peer node also runs llama.cpp's own speculation in single (bench/speculate_llama_node.mjs,
            npm node-llama-cpp, CPU, --peer-threads threads) per prompt: modes off, lookup
            (InputLookupTokenPredictor) and, with --draft, draft (DraftSequenceTokenPredictor).
            It is fed the very prompt ids kiln ran ("prompt_ids" of `kiln run --json`) and
            generates as many tokens as kiln did (greedy, EOS not stopping it), --reps times;
            a second table gives its median tok/s, the ratio to its own off, its predictions
            validated / refuted, and whether its greedy tokens equal kiln's. A llama.cpp mode whose
            tokens differ from its own off is flagged (not fatal: that is the peer's property).

Prompts: three input-grounded tasks (rewrite a function with one change, quote sentences of a
passage, extract JSON from a document) and one open-ended chat with nothing to copy.
Only the loopback address is used; every server is stopped after its round.
"""
import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = pathlib.Path(os.environ.get("KILN_CACHE", pathlib.Path.home() / ".cache" / "kiln")) / "models"

CODE = '''Rewrite this Python function so that it also skips negative numbers. Change nothing else:
keep the name, the docstring, the comments and the structure.

def summarize_orders(orders):
    """Return the total, the count and the largest order amount."""
    total = 0
    count = 0
    largest = None
    # walk over every order in the list
    for order in orders:
        amount = order["amount"]
        total += amount
        count += 1
        # remember the largest amount seen so far
        if largest is None or amount > largest:
            largest = amount
    # the caller expects a dictionary
    return {"total": total, "count": count, "largest": largest}
'''
PASSAGE = ("The lighthouse at Penmar was built in 1871 from granite quarried on the island. Its "
           "first keeper, Thomas Hale, kept a log of every ship that passed for thirty-two years. "
           "In 1903 the oil lamp was replaced by an incandescent burner, and in 1958 the station "
           "was electrified. The light was automated in 1989, and the keeper's cottage is now a "
           "small museum that opens every summer.")
QUOTE = (f"{PASSAGE}\n\nQuote, word for word, the sentences of this passage that mention a "
         "year, one per line.")
DOCUMENT = ("Invoice 2024-0193\nDate: 12 March 2024\nBill to: Harbour Supplies Ltd, 4 Quay Street, "
            "Penmar\nItems: 12 brass lamp fittings at 14.50 each; 3 coils of tarred rope at 32.00 "
            "each; 1 box of wicks at 9.75\nTotal due: 279.75\nPayment terms: 30 days")
EXTRACT = (f"{DOCUMENT}\n\nExtract the invoice number, the date, the customer name and address, "
           "and the total as a JSON object with the keys invoice, date, customer, address, total. "
           "Copy the values exactly as they appear.")
CHAT = "Write a short, original poem about a fox crossing a frozen river at night."
PROMPTS = {"code-edit": CODE, "quote": QUOTE, "extract-json": EXTRACT, "open-chat": CHAT}


def run_once(kiln, model, prompt, mode, n, draft=None):
    cmd = [kiln, "run", "-m", model, "--chat", "-p", prompt, "-n", str(n), "--temp", "0",
           "--speculate", mode, "--json"]
    if draft and mode == "draft":
        cmd += ["--draft", draft]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


PEER_NODE = REPO / "bench" / "speculate_llama_node.mjs"


def peer_node_once(args, model, ids_file, mode, n):
    cmd = ["node", str(PEER_NODE), "--model", model, "--mode", mode, "--prompt-ids", ids_file,
           "-n", str(n), "--threads", str(args.peer_threads)]
    if mode == "draft":
        cmd += ["--draft", args.draft]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"llama.cpp node peer ({mode}) failed: {p.stderr[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def peer_node(args, model, name, prompt_ids, n, kiln_ids):
    """llama.cpp's speculation on kiln's prompt ids: a row of the peer table."""
    modes = ["off", "lookup"] + (["draft"] if args.draft else [])
    speeds = {m: [] for m in modes}
    outputs, preds = {}, {}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="kiln-prompt-ids-") as f:
        json.dump(prompt_ids, f)
        f.flush()
        for _ in range(args.reps):
            for mode in modes:
                r = peer_node_once(args, model, f.name, mode, n)
                speeds[mode].append(r["gen_tok_s"] or 0.0)
                outputs.setdefault(mode, r["output_ids"])
                preds[mode] = r["token_predictions"]
    changed = [m for m in modes[1:] if outputs[m] != outputs["off"]]
    for m in changed:
        print(f"warning: {name}: llama.cpp {m} changed its greedy output vs its off", file=sys.stderr)
    off = outputs["off"]
    same = next((i for i, (a, b) in enumerate(zip(off, kiln_ids)) if a != b), None)
    agree = "yes" if same is None and len(off) == len(kiln_ids) else \
        f"first {same if same is not None else min(len(off), len(kiln_ids))}"
    med = {m: statistics.median(v) for m, v in speeds.items()}
    return (name, len(off), med, preds, changed, agree)


def print_peer(args, model, rows):
    modes = ["off", "lookup"] + (["draft"] if args.draft else [])
    print(f"\n### {pathlib.Path(model).name}: llama.cpp (npm node-llama-cpp, CPU, "
          f"{args.peer_threads} threads), same prompt ids and token count as kiln, median of "
          f"{args.reps}\n")
    print("| prompt | tokens | " + " | ".join(f"{m} tok/s" for m in modes) + " | " +
          " | ".join(f"{m} / off" for m in modes[1:]) + " | validated / refuted (" +
          ", ".join(modes[1:]) + ") | tokens = kiln's |")
    print("|---" * (2 + 2 * len(modes) - 1 + 2) + "|")
    for name, n, med, preds, changed, agree in rows:
        ratios = " | ".join(f"{med[m] / med['off']:.2f}x" + (" (output changed!)" if m in changed
                                                             else "") for m in modes[1:])
        acc = ", ".join(f"{preds[m]['validated']}/{preds[m]['refuted']}" for m in modes[1:])
        print(f"| {name} | {n} | " + " | ".join(f"{med[m]:.1f}" for m in modes) +
              f" | {ratios} | {acc} | {agree} |")


def single(args, model):
    rows, peer_rows = [], []
    for name, prompt in PROMPTS.items():
        speeds = {m: [] for m in args.modes}
        outputs, spec, prompt_ids = {}, {}, None
        for _ in range(args.reps):
            for mode in args.modes:
                r = run_once(args.kiln, model, prompt, mode, args.n, args.draft)
                prompt_ids = prompt_ids or r.get("prompt_ids")
                speeds[mode].append(r["timings"]["gen_tok_s"])
                outputs.setdefault(mode, r["output_ids"])
                if outputs[mode] != r["output_ids"]:
                    sys.exit(f"{name}/{mode}: output changed between repetitions")
                spec[mode] = r["speculation"]
        base = outputs[args.modes[0]]
        for mode in args.modes:
            if outputs[mode] != base:
                sys.exit(f"{name}: speculation {mode} changed the output")
        med = {m: statistics.median(v) for m, v in speeds.items()}
        rows.append((name, len(base), med, spec))
        if args.peer == "node":
            if not prompt_ids:
                sys.exit("kiln run --json printed no prompt_ids: cannot feed the peer")
            peer_rows.append(peer_node(args, model, name, prompt_ids, len(base), base))
    off = args.modes[0]
    print(f"\n### {pathlib.Path(model).name}: single stream, `kiln run --temp 0 -n {args.n}`, "
          f"median of {args.reps}\n")
    print("| prompt | tokens | " + " | ".join(f"{m} tok/s" for m in args.modes) + " | " +
          " | ".join(f"{m} / {off}" for m in args.modes[1:]) + " | accepted / drafted (" +
          ", ".join(args.modes[1:]) + ") |")
    print("|---" * (2 + 2 * len(args.modes) - 1 + 1) + "|")
    for name, n, med, spec in rows:
        ratios = " | ".join(f"{med[m] / med[off]:.2f}x" for m in args.modes[1:])
        acc = ", ".join(f"{spec[m]['accepted_tokens']}/{spec[m]['drafted_tokens']}"
                        for m in args.modes[1:])
        print(f"| {name} | {n} | " + " | ".join(f"{med[m]:.1f}" for m in args.modes) +
              f" | {ratios} | {acc} |")
    if peer_rows:
        print_peer(args, model, peer_rows)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=1800) as r:
        return json.loads(r.read())


def concurrent(args, model):
    results = {}
    for mode in args.modes:
        port = free_port()
        cmd = [args.kiln, "serve", "-m", model, "--port", str(port), "--mode", "server",
               "--max-sequences", str(args.streams), "--speculate", mode,
               "--served-model-name", "m"]
        if args.draft and mode == "draft":
            cmd += ["--draft", args.draft]
        proc = subprocess.Popen(cmd,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            while not proc.stdout.readline().startswith("listening on"):
                if proc.poll() is not None:
                    sys.exit("kiln serve did not start")
            names = list(PROMPTS)
            tokens, usage = [0] * args.streams, [None] * args.streams

            def one(i):
                body = {"model": "m", "max_tokens": args.stream_gen, "temperature": 0,
                        "ignore_eos": True,
                        "messages": [{"role": "user", "content": PROMPTS[names[i % len(names)]]}]}
                r = post(port, body)
                tokens[i] = r["usage"]["completion_tokens"]
                usage[i] = r["usage"].get("completion_tokens_details", {})

            post(port, {"model": "m", "max_tokens": 4,  # warm-up
                        "messages": [{"role": "user", "content": "Hi"}]})
            t0 = time.time()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(args.streams)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.time() - t0
            acc = sum(u.get("accepted_prediction_tokens", 0) for u in usage)
            rej = sum(u.get("rejected_prediction_tokens", 0) for u in usage)
            results[mode] = (sum(tokens) / wall, acc, acc + rej)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    off = args.modes[0]
    print(f"\n### {pathlib.Path(model).name}: {args.streams} concurrent requests, "
          f"{args.stream_gen} tokens each (`kiln serve --mode server`)\n")
    print("| speculate | aggregate tok/s | vs " + off + " | accepted / drafted |")
    print("|---|---|---|---|")
    for mode, (tps, acc, drafted) in results.items():
        print(f"| {mode} | {tps:.1f} | {tps / results[off][0]:.2f}x | {acc}/{drafted} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-m", "--model", action="append")
    p.add_argument("--kiln", default=str(REPO / "build" / "kiln"))
    p.add_argument("-n", type=int, default=160)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--modes", default="off,auto,lookup")
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--stream-gen", type=int, default=64)
    p.add_argument("--only", default="single,concurrent")
    p.add_argument("--draft", help="draft model: adds kiln's `draft` mode (--draft DRAFT)")
    p.add_argument("--peer", choices=["node"],
                   help="also run llama.cpp's speculation (node-llama-cpp) in single")
    p.add_argument("--peer-threads", type=int, default=2)
    args = p.parse_args()
    args.modes = args.modes.split(",")
    if args.draft and "draft" not in args.modes:
        args.modes.append("draft")
    if "draft" in args.modes and not args.draft:
        sys.exit("mode draft needs --draft DRAFT.gguf")
    models = args.model or [str(MODELS / "default.gguf")]
    for model in models:
        if "single" in args.only:
            single(args, model)
        if "concurrent" in args.only:
            concurrent(args, model)


if __name__ == "__main__":
    main()
