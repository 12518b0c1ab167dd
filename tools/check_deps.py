#!/usr/bin/env python3
"""Fails if a file includes a kiln folder that DESIGN.md's dependency table does not allow.

Scans src/, server/, cli/, python/, web/, examples/ for `#include "folder/..."` and checks each include
against ALLOWED below (kept in the same order as the table in DESIGN.md). Exit 1 on violation.
"""
import os
import re
import sys

ALLOWED = {
    "base": set(),
    "io": {"base"},
    "tensor": {"base"},
    "kernels": {"tensor", "base"},
    "backend": {"kernels", "tensor", "base"},
    "kv": {"backend", "tensor", "base"},
    "model": {"kv", "backend", "io", "tensor", "base"},
    "tokenizer": {"io", "base"},
    "grammar": {"tokenizer", "base"},
    "sampling": {"kernels", "tensor", "base"},
    "engine": {"model", "kv", "sampling", "grammar", "tokenizer", "base"},
    "api": {"engine", "tokenizer", "grammar", "base"},
}
# Front ends see only the public API. capi (src/capi, libkiln.so) is the C API's front end
# over include/kiln; examples/ use include/kiln/kiln.h.
FRONTENDS = {"server", "cli", "python", "web", "capi", "examples"}
# io/ may name tensor/dtype.h: DType is the vocabulary type of every tensor a file holds.
EXTRA = {("io", "tensor")}
# Test files may use anything their folder may, plus testing helpers from the same folder.
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SRC_FOLDERS = set(ALLOWED)


def folder_of(root, path):
    rel = os.path.relpath(path, root).split(os.sep)
    if rel[0] == "src" and len(rel) > 1:
        return rel[1]
    return rel[0]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bad = []
    for top in ["src", "server", "cli", "python", "web", "examples"]:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if not f.endswith((".h", ".cc", ".cpp", ".c", ".hpp")):
                    continue
                path = os.path.join(dirpath, f)
                me = folder_of(root, path)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                for inc in INCLUDE_RE.findall(text):
                    target = inc.split("/")[0]
                    if "/" not in inc:
                        continue  # same-folder or third-party header
                    if me in FRONTENDS:
                        if target in SRC_FOLDERS:
                            bad.append(f"{os.path.relpath(path, root)}: front end includes '{inc}' (only include/kiln allowed)")
                        continue
                    if target not in SRC_FOLDERS or target == me:
                        continue
                    if target in ALLOWED.get(me, set()) or (me, target) in EXTRA:
                        continue
                    # kernels/cpu must never call kernels/ref (tests compare them).
                    bad.append(f"{os.path.relpath(path, root)}: '{me}' may not include '{inc}'")
                if me == "kernels" and "/cpu/" in path and not path.endswith("_test.cc"):
                    for inc in INCLUDE_RE.findall(text):
                        if inc.startswith("kernels/ref/"):
                            bad.append(f"{os.path.relpath(path, root)}: kernels/cpu includes '{inc}'")
    for b in bad:
        print(b)
    if bad:
        print(f"check_deps: {len(bad)} violation(s) of DESIGN.md's dependency table")
        return 1
    print("check_deps: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
