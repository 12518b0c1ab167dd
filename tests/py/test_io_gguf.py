"""kiln's GGUF reader against the gguf Python package (GGUFReader): for every GGUF file under
/work/shared/data/tokenizer-vectors and ~/.cache/kiln/models, every metadata key, type and value
and every tensor's name, type, shape, offset and size must agree.

Needs the kiln_gguf_dump driver (tests/io/gguf_dump.cc), found in $KILN_BUILD_DIR
(default /work/main/build)."""
import glob
import json
import math
import os
import subprocess

import pytest

# Shared conformance data: ../shared/data beside the checkout, as CI lays it out.
_SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "shared", "data")

gguf = pytest.importorskip("gguf")

BUILD_DIR = os.environ.get("KILN_BUILD_DIR", "/work/main/build")
DUMP = os.path.join(BUILD_DIR, "tests", "io", "kiln_gguf_dump")
if not os.path.exists(DUMP):  # also accept a flat build layout
    DUMP = os.path.join(BUILD_DIR, "kiln_gguf_dump")

FILES = sorted(
    glob.glob(os.path.join(_SHARED_DATA, "tokenizer-vectors", "*.gguf"))
    + [p for p in glob.glob(os.path.expanduser("~/.cache/kiln/models/*.gguf")) if not os.path.islink(p)]
)

ARRAY = gguf.GGUFValueType.ARRAY
STRING = gguf.GGUFValueType.STRING


def reference_value(field):
    """(type id, elem type id or None, value) with strings as hex of their raw bytes."""
    main = field.types[0]
    if main == STRING:
        return int(main), None, bytes(field.parts[field.data[0]]).hex()
    if main == ARRAY:
        elem = field.types[1] if len(field.types) > 1 else None
        if elem == STRING:
            return int(main), int(elem), [bytes(field.parts[i]).hex() for i in field.data]
        if elem == ARRAY:
            pytest.skip("nested arrays: GGUFReader does not decode them")
        values = [] if elem is None else list(field.contents())
        return int(main), None if elem is None else int(elem), values
    return int(main), None, field.contents()


def same_number(kiln_value, ref_value):
    if isinstance(ref_value, bool) or isinstance(kiln_value, bool):
        return bool(kiln_value) == bool(ref_value) and type(kiln_value) is type(ref_value)
    if isinstance(ref_value, float):
        if math.isnan(ref_value):
            return kiln_value is None  # JSON has no NaN: the dump writes null
        return float(kiln_value) == ref_value
    return int(kiln_value) == int(ref_value)


def same_value(kiln_value, ref_value):
    if isinstance(ref_value, list):
        return isinstance(kiln_value, list) and len(kiln_value) == len(ref_value) and all(
            same_value(a, b) for a, b in zip(kiln_value, ref_value))
    if isinstance(ref_value, str):
        return kiln_value == ref_value
    return same_number(kiln_value, ref_value)


@pytest.fixture(scope="module")
def dump_tool():
    if not os.path.exists(DUMP):
        pytest.skip(f"{DUMP} not built (cmake --build ... --target kiln_gguf_dump)")
    return DUMP


@pytest.mark.skipif(not FILES, reason="no GGUF files in shared data or ~/.cache/kiln/models")
@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_matches_gguf_reader(dump_tool, path):
    out = subprocess.run([dump_tool, path], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    kiln = json.loads(out.stdout)
    ref = gguf.GGUFReader(path)

    assert kiln["version"] == int(ref.fields["GGUF.version"].contents())
    assert kiln["alignment"] == ref.alignment
    assert kiln["data_offset"] == ref.data_offset

    ref_fields = [(k, f) for k, f in ref.fields.items() if not k.startswith("GGUF.")]
    assert [m["key"] for m in kiln["metadata"]] == [k for k, _ in ref_fields]
    for m, (key, field) in zip(kiln["metadata"], ref_fields):
        type_id, elem, value = reference_value(field)
        assert m["type"] == type_id, key
        if elem is not None:
            assert m["elem_type"] == elem, key
        assert same_value(m["value"], value), key

    assert len(kiln["tensors"]) == len(ref.tensors)
    for t, r in zip(kiln["tensors"], ref.tensors):
        assert t["name"] == r.name
        assert t["type"] == int(r.tensor_type), r.name
        assert t["shape"] == [int(d) for d in reversed(r.shape)], r.name  # kiln is row-major
        assert t["offset"] == r.data_offset - ref.data_offset, r.name
        assert t["n_bytes"] == int(r.n_bytes), r.name


def test_rejects_truncated_file(dump_tool, tmp_path):
    src = next((p for p in FILES if os.path.getsize(p) < 50_000_000), None)
    if src is None:
        pytest.skip("no small GGUF file available")
    data = open(src, "rb").read()
    for cut in (3, 23, len(data) // 3, len(data) - 1):
        p = tmp_path / "cut.gguf"
        p.write_bytes(data[:cut])
        out = subprocess.run([dump_tool, str(p)], capture_output=True, timeout=60)
        if cut == len(data) - 1 and out.returncode == 0:
            continue  # vocab-only files end with padding that a reader need not see
        assert out.returncode == 1, cut
        assert b"gguf:" in out.stderr
