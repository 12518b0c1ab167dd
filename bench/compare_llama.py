#!/usr/bin/env python3
"""kiln vs llama.cpp, side by side: pp (one batch of -p tokens) and tg (-n tokens at batch 1).

  python3 bench/compare_llama.py -m MODEL.gguf [-m MODEL2.gguf ...] [-t 1 -t 2] [-p 512] [-n 128]
      [-r 3] [--kiln build-bench/kiln] [--bandwidth 1=16.7,2=30] [--json-out FILE]

For every (model, threads) the two engines run alternately, one process each, R times:
kiln, llama.cpp, kiln, llama.cpp, ... (docs: /work/shared/BENCHMARKS.md). kiln side:
`kiln bench -m MODEL -p P -n N -t T -r 1 --json`; llama.cpp side: bench/llama_bench.mjs (the same
token ids, one llama_decode for pp, N one-token decodes for tg, one-token warm-up).

Printed per row: median pp and tg tokens/s of each engine, the kiln/llama.cpp ratio (median of
the R per-pair ratios, and their min-max), and tg roofline % for each engine:
tokens/s x bytes read per token / read bandwidth. Bytes read per token = every tensor of the
GGUF except the token-embedding table (one row is read), unless the embedding is tied (no
output.weight), where it is the output head and is read whole; plus the f16 KV cache at the
mean decode position (n_prompt + n_gen/2). Bandwidth: --bandwidth THREADS=GB/s,... if given,
else measured here with kernels_bench (--kernels-bench; --benchmark_filter=read_bandwidth),
else the highest `read_gbs` of the row's kiln runs (`kiln bench` measures it right after each
tg run with the same thread count, so it tracks this shared machine's bandwidth at the time;
the highest is the strictest roof). A last column gives kiln's own per-run figure: each run's
tg against the bandwidth measured right after it in the same process (median, min-max).
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import gguf

REPO = pathlib.Path(__file__).resolve().parents[1]
LLAMA_BENCH = REPO / "bench" / "llama_bench.mjs"


def run_json(cmd: list[str]) -> dict:
    """Runs cmd, returns its last JSON line plus wall_s and cpu_s (the child's user+sys time)."""
    t0 = time.time()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        stdout, stderr = p.communicate()
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{stderr[-2000:]}")
    line = [l for l in stdout.splitlines() if l.startswith("{")][-1]
    out = json.loads(line)
    out["wall_s"] = wall
    return out


def children_cpu_s() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load_avg() -> str:
    return open("/proc/loadavg").read().split()[0]


# ---- bytes read per generated token ----

def model_facts(path: str) -> dict:
    r = gguf.GGUFReader(path)
    f = r.fields
    arch = f["general.architecture"].contents()
    get = lambda k, d=None: f[k].contents() if k in f else d
    n_embd = get(f"{arch}.embedding_length")
    n_head = get(f"{arch}.attention.head_count")
    n_head_kv = get(f"{arch}.attention.head_count_kv", n_head)
    if isinstance(n_head_kv, list):
        n_head_kv = max(n_head_kv)
    key_len = get(f"{arch}.attention.key_length", n_embd // n_head)
    val_len = get(f"{arch}.attention.value_length", key_len)
    sizes = {t.name: int(t.n_bytes) for t in r.tensors}
    types = {}
    for t in r.tensors:
        if len(t.shape) == 2:
            name = t.tensor_type.name
            types[name] = types.get(name, 0) + int(t.n_bytes)
    emb = sizes.get("token_embd.weight", 0)
    tied = "output.weight" not in sizes
    emb_rows = int(next(t.shape[1] for t in r.tensors if t.name == "token_embd.weight"))
    weights = sum(sizes.values()) - (0 if tied else emb - emb // emb_rows)
    return dict(arch=arch, n_layer=get(f"{arch}.block_count"), kv_bytes_per_pos=
                get(f"{arch}.block_count") * n_head_kv * (key_len + val_len) * 2,
                weight_bytes_per_token=weights, tied=tied,
                main_type=file_type_name(f, types), file_mib=os.path.getsize(path) / 2**20)


def file_type_name(fields, bytes_by_type: dict) -> str:
    if "general.file_type" in fields:
        try:
            return gguf.LlamaFileType(fields["general.file_type"].contents()).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    return max(bytes_by_type, key=bytes_by_type.get)


# ---- read bandwidth ----

def bandwidth_from_kernels_bench(binary: str) -> dict:
    p = subprocess.run([binary, "--benchmark_filter=read_bandwidth", "--benchmark_repetitions=3",
                        "--benchmark_report_aggregates_only=true", "--benchmark_format=json"],
                       capture_output=True, text=True, check=True)
    out = {}
    for b in json.loads(p.stdout)["benchmarks"]:
        if b.get("aggregate_name") == "median" and "bytes_per_second" in b:
            threads = int(b["run_name"].split("threads:")[1].split("/")[0])
            out[threads] = b["bytes_per_second"] / 1e9
    return out


def parse_bandwidth(s: str) -> dict:
    return {int(k): float(v) for k, v in (kv.split("=") for kv in s.split(","))}


# ---- the comparison ----

def measure(model: str, threads: int, args) -> dict:
    kiln_cmd = [args.kiln, "bench", "-m", model, "-p", str(args.p), "-n", str(args.n), "-t", str(threads), "-r", "1", "--json"]
    llama_cmd = ["node", str(LLAMA_BENCH), "-m", model, "-p", str(args.p), "-n", str(args.n), "-t", str(threads)]
    runs = {"kiln": [], "llama": []}
    loads = [load_avg()]
    for rep in range(args.r):
        for name, cmd in (("kiln", kiln_cmd), ("llama", llama_cmd)):
            c0 = children_cpu_s()
            res = run_json(cmd)
            res["cpu_s"] = children_cpu_s() - c0
            res["cpu_share"] = res["cpu_s"] / res["wall_s"] / threads
            runs[name].append(res)
            print(f"  rep {rep + 1}/{args.r} {name:5s} t={threads}: pp {res['pp_tok_s']:8.2f} tg {res['tg_tok_s']:7.2f} "
                  f"cpu share {res['cpu_share']:.2f} (load {load_avg()})", file=sys.stderr, flush=True)
        loads.append(load_avg())
    return {"runs": runs, "load_avg": loads}


def summarize(model: str, threads: int, m: dict, facts: dict, bw: dict, args) -> dict:
    k, l = m["runs"]["kiln"], m["runs"]["llama"]
    row = {"model": pathlib.Path(model).name, "type": facts["main_type"], "threads": threads,
           "n_prompt": args.p, "n_gen": args.n,
           "file_mib": round(facts["file_mib"], 1), "load_avg": m["load_avg"]}
    for key in ("pp_tok_s", "tg_tok_s"):
        kv, lv = [r[key] for r in k], [r[key] for r in l]
        ratios = [a / b for a, b in zip(kv, lv)]
        row[key] = {"kiln": statistics.median(kv), "llama": statistics.median(lv),
                    "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                    "kiln_all": kv, "llama_all": lv}
    bytes_tok = facts["weight_bytes_per_token"] + facts["kv_bytes_per_pos"] * (args.p + args.n / 2)
    row["bytes_per_token_mb"] = bytes_tok / 1e6
    gbs = bw.get(threads) if bw else max((r.get("read_gbs", 0) for r in k), default=0)
    row["bandwidth_gbs"] = gbs
    row["bandwidth_source"] = "given" if bw else "kiln bench read_gbs (max of the row's kiln runs)"
    if gbs:
        for eng in ("kiln", "llama"):
            row[f"tg_roofline_pct_{eng}"] = 100 * row["tg_tok_s"][eng] * bytes_tok / (gbs * 1e9)
    # Per kiln run: its tg against the bandwidth measured right after it in the same process
    # (kiln bench's own tg_roofline, bytes from the model), so a run and its roof share the
    # machine's state; the machine's bandwidth moves between runs.
    row["kiln_read_gbs_all"] = [r.get("read_gbs", 0) for r in k]
    run_roofs = [100 * r["tg_roofline"] for r in k if r.get("tg_roofline")]
    if run_roofs:
        row["kiln_run_roofline_pct_all"] = run_roofs
        row["kiln_run_roofline_pct"] = statistics.median(run_roofs)
    for eng, rr in (("kiln", k), ("llama", l)):
        row[f"cpu_share_{eng}"] = statistics.median(r["cpu_share"] for r in rr)
    row["llama_build"] = {x: l[0].get(x) for x in ("node_llama_cpp", "llama_cpp_release", "cpu_variant", "flash_attn", "kv_type")}
    row["kiln_isa"] = k[0].get("isa")
    return row


def fmt_row(r: dict) -> str:
    pp, tg = r["pp_tok_s"], r["tg_tok_s"]
    ratio = lambda d: f"{d['ratio']:.2f} ({d['ratio_min']:.2f}-{d['ratio_max']:.2f})"
    roof = "n/a"
    if r.get("tg_roofline_pct_kiln") is not None:
        # In brackets: divided by the process's CPU share (cpu time / wall / threads), an estimate
        # of the figure on an idle machine when other processes take most of the cores.
        est = lambda e: r[f"tg_roofline_pct_{e}"] / r[f"cpu_share_{e}"]
        roof = (f"{r['tg_roofline_pct_kiln']:.0f} % / {r['tg_roofline_pct_llama']:.0f} % "
                f"({est('kiln'):.0f} % / {est('llama'):.0f} %)")
    share = f"{r['cpu_share_kiln']:.2f} / {r['cpu_share_llama']:.2f}"
    run_roof = "n/a"
    if r.get("kiln_run_roofline_pct_all"):
        runs = r["kiln_run_roofline_pct_all"]
        run_roof = f"{r['kiln_run_roofline_pct']:.0f} % ({min(runs):.0f}-{max(runs):.0f})"
    return (f"| {r['model']} | {r['type']} | {r['threads']} | {pp['kiln']:.1f} | {pp['llama']:.1f} | {ratio(pp)} "
            f"| {tg['kiln']:.1f} | {tg['llama']:.1f} | {ratio(tg)} | {roof} | {run_roof} | {share} |")


HEADER = ("| model | type | threads | pp{p} kiln | pp{p} llama.cpp | ratio | tg{n} kiln | tg{n} llama.cpp | ratio "
          "| tg roofline % kiln / llama.cpp (÷ CPU share) | kiln tg roofline per run, median (min-max) "
          "| CPU share kiln / llama.cpp |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", action="append")
    ap.add_argument("--table-from", nargs="+", metavar="JSON", help="only print the table of earlier --json-out files")
    ap.add_argument("-t", "--threads", action="append", type=int)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3, help="repetitions per engine (alternating)")
    ap.add_argument("--kiln", default=str(REPO / "build-bench" / "kiln"))
    ap.add_argument("--bandwidth", help="THREADS=GB/s,... (skips measuring)")
    ap.add_argument("--kernels-bench", help="kernels_bench binary to measure read bandwidth with")
    ap.add_argument("--json-out", help="write all runs and rows here")
    args = ap.parse_args()
    threads_list = args.threads or [1]
    if args.table_from:
        rows = [r for f in args.table_from for r in json.loads(pathlib.Path(f).read_text())["rows"]]
        print(HEADER.format(p=rows[0]["n_prompt"], n=rows[0]["n_gen"]))
        for r in rows:
            print(fmt_row(r))
        return
    if not args.model:
        ap.error("needs -m MODEL")

    if args.bandwidth:
        bw = parse_bandwidth(args.bandwidth)
    elif args.kernels_bench:
        bw = bandwidth_from_kernels_bench(args.kernels_bench)
    else:
        bw = {}  # per row, from kiln bench's read_gbs
    print(f"read bandwidth GB/s by threads: {bw or 'measured by kiln bench per run'}; "
          f"load average {load_avg()}", file=sys.stderr)

    rows = []
    for model in args.model:
        facts = model_facts(model)
        for t in threads_list:
            print(f"{model} threads={t}", file=sys.stderr)
            rows.append(summarize(model, t, measure(model, t, args), facts, bw, args))
    print(HEADER.format(p=args.p, n=args.n))
    for r in rows:
        print(fmt_row(r))
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps({"args": vars(args), "bandwidth_gbs": bw, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
