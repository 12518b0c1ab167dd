"""`kiln bench` (docs/cli.md): repetitions, mean ± standard deviation, CPU time, JSON fields."""

from __future__ import annotations

import statistics

from kiln_env import ROOT, kiln, kiln_json

TINY_MODEL = str(ROOT / "tests" / "testdata" / "tiny" / "llama3_tied.q8_0.gguf")


def test_bench_json_reports_repetitions_and_their_statistics():
    r = kiln_json("bench", "-m", TINY_MODEL, "-p", "16", "-n", "4", "-r", "3", "-t", "2", "--json")
    for key in ("model", "isa", "threads", "n_prompt", "n_gen", "n_reps", "load_ms", "pp_tok_s",
                "pp_tok_s_std", "tg_tok_s", "tg_tok_s_std", "pp_runs", "tg_runs", "pp_cpu_s",
                "tg_cpu_s", "pp_wall_s", "tg_wall_s", "pp_cpu_share", "tg_cpu_share"):
        assert key in r, key
    assert (r["n_prompt"], r["n_gen"], r["n_reps"], r["threads"]) == (16, 4, 3, 2)
    assert r["isa"] and r["load_ms"] > 0
    for phase, n_tok in (("pp", 16), ("tg", 4)):
        runs = r[f"{phase}_runs"]
        assert len(runs) == 3 and all(v > 0 for v in runs)
        assert abs(r[f"{phase}_tok_s"] - statistics.mean(runs)) <= 1e-6 * r[f"{phase}_tok_s"]
        assert abs(r[f"{phase}_tok_s_std"] - statistics.stdev(runs)) <= 1e-6 * max(1.0, r[f"{phase}_tok_s_std"])
        # tokens/s of each run is n_tok / its wall time; the mean wall time is their mean.
        walls = [n_tok / v for v in runs]
        assert abs(r[f"{phase}_wall_s"] - statistics.mean(walls)) <= 1e-6 * r[f"{phase}_wall_s"] + 1e-9
        assert r[f"{phase}_cpu_s"] > 0
        assert 0 < r[f"{phase}_cpu_share"] <= 1.5


def test_bench_table_and_bad_repetitions():
    out = kiln("bench", "-m", TINY_MODEL, "-p", "8", "-n", "2", "-r", "2").stdout
    assert "| pp8 |" in out and "| tg2 |" in out and "±" in out
    bad = kiln("bench", "-m", TINY_MODEL, "-p", "8", "-n", "2", "-r", "0", check=False)
    assert bad.returncode != 0


def test_bench_reports_the_tg_memory_roofline():
    """Bytes per decode step, checked against the GGUF's own tensor sizes (the gguf library):
    every tensor whole (the tied embedding is the output head) plus one embedding row, plus
    the f16 K/V of every attended position at the mean tg position (16 + 4 // 2)."""
    import gguf

    r = kiln_json("bench", "-m", TINY_MODEL, "-p", "16", "-n", "4", "-r", "1", "-t", "2", "--json")
    reader = gguf.GGUFReader(TINY_MODEL)
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors  # tied
    emb = tensors["token_embd.weight"]
    want = sum(int(t.n_bytes) for t in reader.tensors) + int(emb.n_bytes) // int(emb.shape[1])

    def meta(key):
        f = reader.fields[key]
        return int(f.parts[f.data[0]][0])

    n_layers, n_embd = meta("llama.block_count"), meta("llama.embedding_length")
    head_dim = n_embd // meta("llama.attention.head_count")
    kv_dim = meta("llama.attention.head_count_kv") * head_dim
    want += n_layers * 2 * kv_dim * 2 * (16 + 4 // 2 + 1)
    assert abs(r["tg_bytes_per_token"] - want) <= 0.01 * want, (r["tg_bytes_per_token"], want)
    assert r["read_gbs"] > 0.1
    roof = r["tg_tok_s"] * r["tg_bytes_per_token"] / (r["read_gbs"] * 1e9)
    assert abs(r["tg_roofline"] - roof) <= 1e-6 * roof
    table = kiln("bench", "-m", TINY_MODEL, "-p", "8", "-n", "2", "-r", "1").stdout
    assert "read bandwidth" in table and "of the memory roofline" in table
    no_tg = kiln_json("bench", "-m", TINY_MODEL, "-p", "8", "-n", "0", "-r", "1", "--json")
    assert no_tg["tg_roofline"] == 0 and no_tg["read_gbs"] == 0
