#!/usr/bin/env python3
"""libkiln.so exports exactly the functions kiln.h declares (issue #18).

usage: check_symbols.py LIBKILN_SO KILN_H
Reads the names declared with KILN_API in the header and the dynamic symbols the library
defines (`nm -D --defined-only`), and fails on any difference either way.
"""
import re
import subprocess
import sys


def header_functions(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments may mention names
    # KILN_API <return type> name(   (the return type may end in '*')
    return set(re.findall(r"\bKILN_API\b[^;(]*?\b(kiln_\w+)\s*\(", text))


def library_symbols(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2].split("@")[0])
    return names


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    declared = header_functions(sys.argv[2])
    exported = library_symbols(sys.argv[1])
    if len(declared) < 10:
        print(f"check_symbols: only {len(declared)} functions found in {sys.argv[2]}: {declared}")
        return 1
    missing = sorted(declared - exported)
    extra = sorted(exported - declared)
    for name in missing:
        print(f"declared in kiln.h, not exported: {name}")
    for name in extra:
        print(f"exported, not declared in kiln.h: {name}")
    if missing or extra:
        return 1
    print(f"check_symbols: ok ({len(declared)} functions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
