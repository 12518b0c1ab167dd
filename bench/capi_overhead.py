#!/usr/bin/env python3
"""The C API's cost per streamed token (issue #18's target: under 5 % of decode time).

  python3 bench/capi_overhead.py --build build -m default --rounds 8

Each round runs, one after the other on the same model, prompt length, token count and
threads: `kiln bench` (decode tokens/s of the model loop), bench/serving_stream_bench (the same
greedy stream through the C++ serving API, no JSON) and bench/capi_stream_bench (through
libkiln.so: JSON chunks, handles). Alternating spreads the machine's noise over the three;
medians over the rounds are reported, with the calling thread's CPU time per token of the two
stream loops (the layer's own work, which wall-clock noise does not hide).
"""
import argparse
import json
import os
import statistics
import subprocess


def last_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("-m", "--model", default="default")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--prompt-words", type=int, default=100, help="prompt of ~this many tokens")
    args = ap.parse_args()
    b = args.build
    n, t, w = str(args.n_gen), str(args.threads), str(args.prompt_words)
    rows = {k: [] for k in ("bench", "serving", "capi", "serving_cpu_us", "capi_cpu_us")}
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        bench = last_json([os.path.join(b, "kiln"), "bench", "-m", args.model, "-p", w, "-n", n,
                           "-t", t, "-r", "3", "--json"])["tg_tok_s"]
        serving = last_json([os.path.join(b, "serving_stream_bench"), args.model, n, t, "3", w])
        capi = last_json([os.path.join(b, "capi_stream_bench"), args.model, n, t, "3", w])
        rows["bench"].append(bench)
        rows["serving"].append(serving["decode_tok_s"])
        rows["capi"].append(capi["decode_tok_s"])
        rows["serving_cpu_us"].append(serving["caller_cpu_us_per_token"])
        rows["capi_cpu_us"].append(capi["caller_cpu_us_per_token"])
        print(f"round {r} (load {load:.1f}): kiln bench {bench:.1f} tok/s | serving "
              f"{serving['decode_tok_s']:.1f} tok/s, {serving['caller_cpu_us_per_token']:.1f} us "
              f"| C API {capi['decode_tok_s']:.1f} tok/s, {capi['caller_cpu_us_per_token']:.1f} us",
              flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print("median", json.dumps({k: round(v, 1) for k, v in med.items()}))
    print(f"C API / kiln bench {med['capi'] / med['bench']:.3f}, C API / serving "
          f"{med['capi'] / med['serving']:.3f}, serving / kiln bench "
          f"{med['serving'] / med['bench']:.3f}")
    share = med["capi_cpu_us"] * 1e-6 * med["capi"] * 100
    share_serving = med["serving_cpu_us"] * 1e-6 * med["serving"] * 100
    print(f"caller CPU per token, share of decode time: C API {share:.2f} %, serving loop "
          f"{share_serving:.2f} %")


if __name__ == "__main__":
    main()
