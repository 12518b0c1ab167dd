"""End-to-end generation cost with a JSON Schema vs without (docs/performance.md, "Structured
generation"). Runs `kiln run -t 1 --json` with the schema, then without it for the same number of
output tokens (--ignore-eos), then a 1-token run (load + prefill), alternately, and reports
medians. Costs are the child process's CPU time (user + sys), so the figure stays meaningful on
a machine shared with other jobs; wall-clock tok/s from kiln's own timings are printed too.

  python3 bench/structured_e2e.py [--kiln build/kiln] [--model default] [--runs 5]

CPU ms per output token = (CPU of the run - CPU of the 1-token run) / (output tokens - 1): for
the schema run it includes the vocabulary build, compilation, masks and jump-forward.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROMPT = ("Call the weather tool for Paris, France in celsius for 3 days with temperature and "
          "wind, hourly details in French. Answer with the JSON arguments only.")


def run(kiln, model, extra, n):
    cmd = [kiln, "run", "-m", model, "-t", "1", "--chat", "-p", PROMPT, "--temp", "0", "-n", str(n),
           "--json", *extra]
    before = os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    after = os.times()
    cpu_ms = ((after.children_user - before.children_user) +
              (after.children_system - before.children_system)) * 1000.0
    out = json.loads(proc.stdout)
    n_out = len(out["output_ids"])
    return {"cpu_ms": cpu_ms, "n_out": n_out, "forced": out.get("forced_tokens", 0),
            "finish": out["finish_reason"],
            "wall_tok_s": (n_out - 1) * 1000.0 / max(1e-9, out["timings"]["gen_ms"])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=str(ROOT / "build" / "kiln"))
    ap.add_argument("--model", default="default")
    ap.add_argument("--schema", default=str(ROOT / "bench" / "tool_schema.json"))
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    schema, free, base = [], [], []
    for _ in range(a.runs):
        schema.append(run(a.kiln, a.model, ["--json-schema", a.schema], 96))
        n = schema[-1]["n_out"]
        free.append(run(a.kiln, a.model, ["--ignore-eos"], n))
        base.append(run(a.kiln, a.model, [], 1))
    b = statistics.median(r["cpu_ms"] for r in base)
    per = {}
    for name, rs in (("unconstrained", free), ("json-schema", schema)):
        per[name] = statistics.median((r["cpu_ms"] - b) / (r["n_out"] - 1) for r in rs)
        print(f"{name:14s} CPU ms/output token {per[name]:6.2f}  wall tok/s "
              f"{statistics.median(r['wall_tok_s'] for r in rs):6.1f}  tokens {rs[0]['n_out']} "
              f"(forced {rs[0]['forced']}, {rs[0]['finish']})")
    print(f"1-token baseline CPU {b:.0f} ms; schema / unconstrained: "
          f"{per['json-schema'] / per['unconstrained']:.3f}")


if __name__ == "__main__":
    main()
