"""`python -m kiln run|chat|serve|bench|… ARGS`: mirrors the `kiln` command.

`run` is implemented here over kiln.Engine (same flags as `kiln run`; --json prints prompt/output
token counts, the text and the finish reason). Every other command execs the `kiln` binary, found
through $KILN_BINARY or PATH, with the same arguments.
"""
import argparse
import json
import os
import shutil
import sys
import time


def _run(argv):
    p = argparse.ArgumentParser(prog="python -m kiln run")
    p.add_argument("-m", "--model", default="default")
    p.add_argument("-p", "--prompt", required=True)
    p.add_argument("-n", "--n-predict", type=int, default=128)
    p.add_argument("--temp", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chat", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("-t", "--threads", type=int, default=0)
    a = p.parse_args(argv)
    from . import Engine
    t0 = time.time()
    with Engine(a.model, n_threads=a.threads) as engine:
        load_ms = (time.time() - t0) * 1000
        fields = dict(temperature=a.temp, seed=a.seed, max_tokens=a.n_predict)
        if a.chat:
            r = engine.chat.completions.create(
                messages=[{"role": "user", "content": a.prompt}], **fields)
            text = r.choices[0].message.content
        else:
            r = engine.completions.create(prompt=a.prompt, **fields)
            text = r.choices[0].text
        if a.json:
            print(json.dumps({"model": a.model, "text": text,
                              "finish_reason": r.choices[0].finish_reason,
                              "prompt_tokens": r.usage.prompt_tokens,
                              "completion_tokens": r.usage.completion_tokens,
                              "timings": {"load_ms": load_ms}}))
        else:
            print(text)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run":
        return _run(argv[1:])
    binary = os.environ.get("KILN_BINARY") or shutil.which("kiln")
    if not binary:
        print("python -m kiln: only 'run' is built in; for other commands put the `kiln` binary "
              "on PATH or set KILN_BINARY", file=sys.stderr)
        return 2
    os.execv(binary, [binary] + argv)


if __name__ == "__main__":
    sys.exit(main())
