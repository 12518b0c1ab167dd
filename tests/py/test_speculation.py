"""Speculative decoding (#15) never changes the answer: with speculation on, every request gets
the very tokens (and logprobs) it gets with speculation off, greedy and sampled, alone and among
15 concurrent requests, under a JSON Schema, and through prefix-cache hits; the guesses are
counted in usage (OpenAI's prediction-token fields) and /metrics. `kiln run --speculate` the
same on the default model and, when fetched (scripts/fetch_models.sh coder), on the
Qwen2.5-Coder pair."""

from __future__ import annotations

import json
import threading

import pytest

from kiln_env import GEMMA, MODELS, SMOLLM, kiln, kiln_json, require
from test_server_util import metrics, post, running_server

PASSAGE = ("The lighthouse keeper climbed the spiral stairs every evening at dusk. He wound the "
           "clockwork, trimmed the wick, polished the great lens, and wrote the weather in his "
           "log: wind from the north-west, sea moderate, visibility good.")
COPY = f"Repeat the following text exactly, word for word:\n\n{PASSAGE}"
CODE = '''Rewrite this Python function so that it uses a list comprehension. Keep the docstring.

def even_squares(numbers):
    """Return the squares of the even numbers, in order."""
    result = []
    for n in numbers:
        if n % 2 == 0:
            result.append(n * n)
    return result
'''
SCHEMA = {"type": "object", "properties": {"keeper": {"type": "string"},
                                           "wind": {"type": "string"},
                                           "sea": {"type": "string"}},
          "required": ["keeper", "wind", "sea"], "additionalProperties": False}


def body(model: str, prompt: str, **extra) -> dict:
    b = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64,
         "temperature": 0, "logprobs": True, "top_logprobs": 2}
    b.update(extra)
    return b


# (name, prompt, extra fields): greedy, sampled with top_p, schema-constrained, open chat.
CASES = [
    ("copy-greedy", COPY, {}),
    ("copy-sampled", COPY, {"temperature": 0.8, "top_p": 0.9, "seed": 7}),
    ("code-sampled", CODE, {"temperature": 0.8, "top_p": 0.95, "seed": 11}),
    ("schema", f"From this text, give the keeper, the wind and the sea as JSON.\n\n{PASSAGE}",
     {"response_format": {"type": "json_schema",
                          "json_schema": {"name": "log", "schema": SCHEMA}},
      "max_tokens": 200}),
    ("chat", "Tell me something about autumn.", {"temperature": 0.7, "seed": 3}),
]


def answer(base: str, b: dict) -> tuple[str, list, dict]:
    r = post(base, "/v1/chat/completions", b)
    assert r.status_code == 200, r.text
    j = r.json()
    choice = j["choices"][0]
    lp = [(t["token"], t["logprob"], [(a["token"], a["logprob"]) for a in t["top_logprobs"]])
          for t in choice["logprobs"]["content"]]
    return choice["message"]["content"], lp, j["usage"]


@pytest.fixture(scope="module")
def spec_srv():
    # lookup: every guess found is verified (auto would skip many in a busy batch)
    with running_server("--speculate", "lookup") as s:
        yield s


def test_speculation_never_changes_tokens_or_logprobs(spec_srv):
    accepted = 0
    for name, prompt, extra in CASES:
        on = answer(spec_srv.base, body(spec_srv.model_id, prompt, **extra))
        off = answer(spec_srv.base, body(spec_srv.model_id, prompt, speculation="off", **extra))
        assert on[0] == off[0], name
        assert on[1] == off[1], f"{name}: logprobs differ"
        details_off = off[2]["completion_tokens_details"]
        assert details_off == {"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        details = on[2]["completion_tokens_details"]
        assert details["accepted_prediction_tokens"] >= 0
        assert details["rejected_prediction_tokens"] >= 0
        accepted += details["accepted_prediction_tokens"]
        if name == "schema":
            assert set(json.loads(on[0])) == {"keeper", "wind", "sea"}
    assert accepted > 0, "prompt lookup accepted nothing on a copy task"
    m = metrics(spec_srv.base)
    assert m["kiln_spec_accepted_tokens_total"] >= accepted
    assert m["kiln_spec_drafted_tokens_total"] >= m["kiln_spec_accepted_tokens_total"]


def test_speculation_among_concurrent_requests_and_cache_hits(spec_srv):
    solo = {}
    for i in range(15):
        name, prompt, extra = CASES[i % len(CASES)]
        extra = dict(extra, seed=100 + i) if "seed" in extra else extra
        solo[i] = answer(spec_srv.base, body(spec_srv.model_id, prompt, speculation="off", **extra))
    results: dict[int, tuple] = {}

    def run(i: int) -> None:
        name, prompt, extra = CASES[i % len(CASES)]
        extra = dict(extra, seed=100 + i) if "seed" in extra else extra
        results[i] = answer(spec_srv.base, body(spec_srv.model_id, prompt, **extra))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert sorted(results) == list(range(15))
    drafted = sum(r[2]["completion_tokens_details"]["accepted_prediction_tokens"] +
                  r[2]["completion_tokens_details"]["rejected_prediction_tokens"]
                  for r in results.values())
    assert drafted > 0, "no guess was verified among the concurrent requests"
    for i in range(15):
        assert results[i][0] == solo[i][0], f"request {i} ({CASES[i % len(CASES)][0]})"
        assert results[i][1] == solo[i][1], f"request {i}: logprobs differ"
        # Every prompt was sent before: its blocks come from the prefix cache.
        assert results[i][2]["prompt_tokens_details"]["cached_tokens"] > 0


def test_predicted_outputs_feed_guesses_and_never_change_the_answer(spec_srv):
    """OpenAI's Predicted Outputs: the expected output as `prediction`; the answer is the one
    without it, its guesses counted in completion_tokens_details."""
    prompt = f"Repeat the following text exactly, word for word:\n\n{PASSAGE}"
    plain = answer(spec_srv.base, body(spec_srv.model_id, prompt, speculation="off"))
    for content in (PASSAGE, [{"type": "text", "text": PASSAGE}]):
        pred = answer(spec_srv.base, body(spec_srv.model_id, prompt,
                                          prediction={"type": "content", "content": content}))
        assert pred[0] == plain[0] and pred[1] == plain[1]
        assert pred[2]["completion_tokens_details"]["accepted_prediction_tokens"] > 0
    for bad, param in (({"type": "text", "content": "x"}, "prediction.type"),
                       ({"type": "content"}, "prediction.content"),
                       ({"type": "content", "content": []}, "prediction.content"),
                       ("x", "prediction.type")):
        r = post(spec_srv.base, "/v1/chat/completions", body(spec_srv.model_id, "Hi", prediction=bad))
        assert r.status_code == 400, bad
        assert r.json()["error"]["param"] == param, bad


def test_speculation_field_is_validated(spec_srv):
    r = post(spec_srv.base, "/v1/chat/completions",
             body(spec_srv.model_id, "Hi", speculation="sometimes"))
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "speculation"
    r = post(spec_srv.base, "/v1/chat/completions", body(spec_srv.model_id, "Hi", speculation=1))
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "speculation"


CODER = [MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
         MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"]


@pytest.mark.parametrize("model", [SMOLLM, *CODER], ids=["smollm2", "coder-0.5b", "coder-1.5b"])
def test_kiln_run_speculation_gives_the_same_tokens(model):
    require(model, "test model")
    n = "48" if model == SMOLLM else "24"
    for temp in ("0", "0.8"):
        runs = {mode: kiln_json("run", "-m", str(model), "--chat", "-p", CODE, "-n", n, "--temp",
                                temp, "--seed", "5", "--speculate", mode, "--json")
                for mode in ("off", "lookup", "auto")}
        assert runs["lookup"]["output_ids"] == runs["off"]["output_ids"], f"temp {temp}"
        assert runs["auto"]["output_ids"] == runs["off"]["output_ids"], f"temp {temp}"
        assert runs["off"]["speculation"] == {"drafted_tokens": 0, "accepted_tokens": 0}
        spec = runs["lookup"]["speculation"]
        assert 0 <= spec["accepted_tokens"] <= spec["drafted_tokens"]
    assert spec["drafted_tokens"] > 0


@pytest.mark.parametrize("temp", ["0", "0.8"])
def test_draft_model_gives_the_same_tokens(temp):
    """The real pair: Qwen2.5-Coder 0.5B drafting for the 1.5B (scripts/fetch_models.sh coder)."""
    for m in CODER:
        require(m, "Qwen2.5-Coder model")
    common = ["run", "-m", str(CODER[1]), "--chat", "-p", CODE, "-n", "32", "--temp", temp,
              "--seed", "5", "--json"]
    off = kiln_json(*common, "--speculate", "off")
    for mode in ("draft", "auto"):
        on = kiln_json(*common, "--draft", str(CODER[0]), "--speculate", mode)
        assert on["output_ids"] == off["output_ids"], mode
        spec = on["speculation"]
        assert 0 <= spec["accepted_tokens"] <= spec["drafted_tokens"]
        if mode == "draft":
            assert spec["accepted_tokens"] > 0


def test_draft_model_with_another_vocabulary_is_refused():
    require(GEMMA, "Gemma 3 model")
    proc = kiln("run", "-m", str(SMOLLM), "--draft", str(GEMMA), "-p", "hi", "-n", "2",
                check=False)
    assert proc.returncode != 0
    assert "vocabulary differs from the target's at token 0" in proc.stderr
    proc = kiln("run", "-m", str(SMOLLM), "--draft", str(SMOLLM), "--speculate", "lookup",
                "-p", "hi", "-n", "2", check=False)
    assert proc.returncode != 0 and "draft model is given but speculate is lookup" in proc.stderr


def test_draft_model_in_the_server_never_changes_tokens():
    """SmolLM2 drafting for itself (same vocabulary, cheap): concurrent requests, greedy and
    sampled, each equal to its own answer without speculation."""
    with running_server("--speculate", "draft", "--draft", str(SMOLLM)) as srv:
        solo = [answer(srv.base, body(srv.model_id, prompt, speculation="off", **extra))
                for _, prompt, extra in CASES]
        results: dict[int, tuple] = {}

        def run(i: int) -> None:
            _, prompt, extra = CASES[i]
            results[i] = answer(srv.base, body(srv.model_id, prompt, **extra))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(CASES))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        for i, (name, _, _) in enumerate(CASES):
            assert results[i][0] == solo[i][0], name
            assert results[i][1] == solo[i][1], f"{name}: logprobs differ"
        assert sum(r[2]["completion_tokens_details"]["accepted_prediction_tokens"]
                   for r in results.values()) > 0
