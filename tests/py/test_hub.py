"""kiln's Hugging Face hub client (src/io/hub.cc) against a fake hub on 127.0.0.1.

The fake hub serves GET /api/models/{org}/{name}/revision/{rev} (JSON: sha, siblings with size,
blobId and lfs.sha256/size) and GET /{org}/{name}/resolve/{commit}/{file} with Range support.
The driver `kiln_hub_fetch SPEC` (tests/io/hub_fetch.cc) resolves a model spec and prints the
local path; it runs with HF_ENDPOINT/HF_HOME pointing at the fake hub and a temp folder.
Checks: the hub cache layout, the bytes, resume (connection dropped mid-file, and a partial
file left by an earlier run), checksum failure, bearer token, offline reuse."""
import hashlib
import http.server
import json
import os
import socket
import subprocess
import threading
import urllib.parse

import pytest

BUILD_DIR = os.environ.get("KILN_BUILD_DIR", "/work/main/build")
FETCH = os.path.join(BUILD_DIR, "tests", "io", "kiln_hub_fetch")
if not os.path.exists(FETCH):
    FETCH = os.path.join(BUILD_DIR, "kiln_hub_fetch")

COMMIT = "0123456789abcdef0123456789abcdef01234567"
COMMIT_V1 = "89abcdef0123456789abcdef0123456789abcdef"


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def safetensors_bytes(n_floats, seed):
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_floats],
                               "data_offsets": [0, 4 * n_floats]}}).encode()
    header += b" " * (-len(header) % 8)
    body = bytes((seed + 31 * i) % 251 for i in range(4 * n_floats))
    return len(header).to_bytes(8, "little") + header + body


def make_repos():
    """{repo_id: {revision: (commit, {file: bytes}, lfs_files)}}"""
    big = safetensors_bytes(65536, 1)  # 256 KiB: the "LFS" file that gets dropped and resumed
    tiny = {
        "config.json": b'{"architectures":["LlamaForCausalLM"],"hidden_size":8}',
        "tokenizer.json": b'{"model":{"type":"BPE"}}',
        "tokenizer_config.json": b'{"bos_token":"<s>"}',
        "README.md": b"# not downloaded",
        "model.safetensors": big,
    }
    index = json.dumps({"metadata": {}, "weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}).encode()
    sharded = {
        "config.json": b'{"hidden_size":4}',
        "model.safetensors.index.json": index,
        "model-00001-of-00002.safetensors": safetensors_bytes(1000, 2),
        "model-00002-of-00002.safetensors": safetensors_bytes(2000, 3),
    }
    ggufs = {"a.Q4_0.gguf": b"GGUF" + bytes(100), "sub/b.Q8_0.gguf": b"GGUF" + bytes(range(200))}
    one_gguf = {"only.gguf": b"GGUF" + bytes(range(50))}
    lfs = {"model.safetensors", "model-00001-of-00002.safetensors",
           "model-00002-of-00002.safetensors", "a.Q4_0.gguf", "sub/b.Q8_0.gguf", "only.gguf"}
    return {
        "kiln-test/tiny": {"main": (COMMIT, tiny), "v1": (COMMIT_V1, dict(tiny, **{
            "config.json": b'{"hidden_size":16}'}))},
        "kiln-test/sharded": {"main": (COMMIT, sharded)},
        "kiln-test/ggufs": {"main": (COMMIT, ggufs)},
        "kiln-test/one-gguf": {"main": (COMMIT, one_gguf)},
    }, lfs


class FakeHub:
    def __init__(self):
        self.repos, self.lfs = make_repos()
        self.requests = []  # (path, Range header, Authorization header)
        self.drop_first = set()  # file names whose first download is cut halfway
        self.wrong_sha = set()  # file names whose advertised sha256 is wrong
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.requests.append((self.path, self.headers.get("Range"),
                                     self.headers.get("Authorization")))
                path = urllib.parse.urlparse(self.path).path
                parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
                if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "revision":
                    return self.api("/".join(parts[2:4]), parts[5])
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self.resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
                self.send_error(404)

            def api(self, repo, rev):
                revs = hub.repos.get(repo)
                if revs is None or rev not in revs:
                    return self.send_error(404)
                commit, files = revs[rev]
                siblings = []
                for name, data in files.items():
                    s = {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
                    if name in hub.lfs:
                        sha = hashlib.sha256(data).hexdigest()
                        if name in hub.wrong_sha:
                            sha = "f" * 64
                        s["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": 130}
                    siblings.append(s)
                self.send_body(200, json.dumps({"id": repo, "sha": commit,
                                                "siblings": siblings}).encode())

            def resolve(self, repo, commit, name):
                for c, files in hub.repos.get(repo, {}).values():
                    if c == commit and name in files:
                        return self.send_file(name, files[name])
                self.send_error(404)

            def send_file(self, name, data):
                rng = self.headers.get("Range")
                start = 0
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if name in hub.drop_first:
                    hub.drop_first.discard(name)
                    self.wfile.write(data[start:start + (len(data) - start) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def send_body(self, code, body):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    if not os.path.exists(FETCH):
        pytest.skip(f"{FETCH} not built (cmake --build ... --target kiln_hub_fetch)")
    h = FakeHub()
    yield h
    h.stop()


@pytest.fixture
def hf_home(tmp_path):
    return tmp_path / "hf"


def fetch(spec, hub_endpoint, hf_home, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub_endpoint, HF_HOME=str(hf_home), KILN_HUB_BACKOFF_S="0.05",
               KILN_HUB_MAX_ATTEMPTS="3", KILN_HUB_STALL_TIMEOUT_S="10")
    env.update(env_extra)
    return subprocess.run([FETCH, spec], capture_output=True, text=True, env=env, timeout=60)


def repo_dir(hf_home, repo):
    return hf_home / "hub" / ("models--" + repo.replace("/", "--"))


def check_snapshot_file(hf_home, repo, commit, name, data, lfs):
    rd = repo_dir(hf_home, repo)
    link = rd / "snapshots" / commit / name
    assert link.is_symlink(), link
    target = os.readlink(link)
    blob_id = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
    assert target == "../" * (2 + name.count("/")) + "blobs/" + blob_id
    assert (rd / "blobs" / blob_id).read_bytes() == data
    assert link.read_bytes() == data


def test_downloads_model_folder_in_hub_layout(hub, hf_home):
    out = fetch("hf://kiln-test/tiny", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    rd = repo_dir(hf_home, "kiln-test/tiny")
    assert out.stdout.strip() == str(rd / "snapshots" / COMMIT)
    assert (rd / "refs" / "main").read_text() == COMMIT
    _, files = hub.repos["kiln-test/tiny"]["main"]
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        check_snapshot_file(hf_home, "kiln-test/tiny", COMMIT, name, files[name], name in hub.lfs)
    assert not (rd / "snapshots" / COMMIT / "README.md").exists()
    assert not list((rd / "blobs").glob("*.incomplete"))
    api = [p for p, _, _ in hub.requests if p.startswith("/api/")]
    assert api == ["/api/models/kiln-test/tiny/revision/main?blobs=true"]

    # A second fetch reuses every blob: only the model info is requested again.
    n = len(hub.requests)
    out = fetch("hf://kiln-test/tiny", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    assert [p for p, _, _ in hub.requests[n:]] == api


def test_revision_and_token(hub, hf_home):
    out = fetch("hf://kiln-test/tiny@v1", hub.endpoint, hf_home, HF_TOKEN="secret-token")
    assert out.returncode == 0, out.stderr
    rd = repo_dir(hf_home, "kiln-test/tiny")
    assert out.stdout.strip() == str(rd / "snapshots" / COMMIT_V1)
    assert (rd / "refs" / "v1").read_text() == COMMIT_V1
    assert (rd / "snapshots" / COMMIT_V1 / "config.json").read_bytes() == b'{"hidden_size":16}'
    assert hub.requests and all(a == "Bearer secret-token" for _, _, a in hub.requests)


def test_sharded_safetensors(hub, hf_home):
    out = fetch("hf://kiln-test/sharded", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    _, files = hub.repos["kiln-test/sharded"]["main"]
    for name, data in files.items():
        check_snapshot_file(hf_home, "kiln-test/sharded", COMMIT, name, data, name in hub.lfs)


def test_gguf_repos(hub, hf_home):
    out = fetch("hf://kiln-test/ggufs", hub.endpoint, hf_home)
    assert out.returncode == 1
    assert "hf://kiln-test/ggufs/a.Q4_0.gguf" in out.stderr
    assert "hf://kiln-test/ggufs/sub/b.Q8_0.gguf" in out.stderr

    out = fetch("hf://kiln-test/ggufs/sub/b.Q8_0.gguf", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    rd = repo_dir(hf_home, "kiln-test/ggufs")
    assert out.stdout.strip() == str(rd / "snapshots" / COMMIT / "sub" / "b.Q8_0.gguf")
    _, files = hub.repos["kiln-test/ggufs"]["main"]
    check_snapshot_file(hf_home, "kiln-test/ggufs", COMMIT, "sub/b.Q8_0.gguf",
                        files["sub/b.Q8_0.gguf"], True)
    assert not (rd / "snapshots" / COMMIT / "a.Q4_0.gguf").exists()

    out = fetch("hf://kiln-test/one-gguf", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("/snapshots/" + COMMIT + "/only.gguf")


def test_resumes_after_dropped_connection(hub, hf_home):
    hub.drop_first.add("model.safetensors")
    out = fetch("hf://kiln-test/tiny", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    data = hub.repos["kiln-test/tiny"]["main"][1]["model.safetensors"]
    gets = [(p, r) for p, r, _ in hub.requests if p.endswith("/model.safetensors")]
    assert gets[0][1] is None
    assert gets[1][1] == f"bytes={len(data) // 2}-", gets  # resumed where the cut happened
    assert len(gets) == 2
    check_snapshot_file(hf_home, "kiln-test/tiny", COMMIT, "model.safetensors", data, True)


def test_resumes_partial_file_from_earlier_run(hub, hf_home):
    data = hub.repos["kiln-test/tiny"]["main"][1]["model.safetensors"]
    blobs = repo_dir(hf_home, "kiln-test/tiny") / "blobs"
    blobs.mkdir(parents=True)
    (blobs / (hashlib.sha256(data).hexdigest() + ".incomplete")).write_bytes(data[:1000])
    out = fetch("hf://kiln-test/tiny", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    ranges = [r for p, r, _ in hub.requests if p.endswith("/model.safetensors")]
    assert ranges == ["bytes=1000-"]
    check_snapshot_file(hf_home, "kiln-test/tiny", COMMIT, "model.safetensors", data, True)


def test_checksum_mismatch_fails(hub, hf_home):
    hub.wrong_sha.add("model.safetensors")
    out = fetch("hf://kiln-test/tiny", hub.endpoint, hf_home)
    assert out.returncode == 1
    assert "sha256 mismatch" in out.stderr and "model.safetensors" in out.stderr
    blobs = repo_dir(hf_home, "kiln-test/tiny") / "blobs"
    assert not (blobs / ("f" * 64)).exists()
    assert not list(blobs.glob("*.incomplete"))
    assert not (repo_dir(hf_home, "kiln-test/tiny") / "refs" / "main").exists()


def test_offline_reuse(hub, hf_home):
    out = fetch("hf://kiln-test/tiny", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    path = out.stdout.strip()
    out = fetch("hf://kiln-test/ggufs/a.Q4_0.gguf", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    gguf_path = out.stdout.strip()
    endpoint = hub.endpoint
    hub.stop()

    out = fetch("hf://kiln-test/tiny", endpoint, hf_home, HF_HUB_OFFLINE="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == path
    out = fetch("hf://kiln-test/ggufs/a.Q4_0.gguf", endpoint, hf_home, HF_HUB_OFFLINE="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == gguf_path
    # Hub unreachable without HF_HUB_OFFLINE: falls back to the cache too.
    out = fetch("hf://kiln-test/tiny", endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == path
    # Nothing cached for this one: a clear error, not a hang.
    out = fetch("hf://kiln-test/sharded", endpoint, hf_home, HF_HUB_OFFLINE="1")
    assert out.returncode == 1
    assert "HF_HUB_OFFLINE" in out.stderr and "no cached copy" in out.stderr
    out = fetch("hf://kiln-test/sharded", endpoint, hf_home)
    assert out.returncode == 1
    assert "unreachable" in out.stderr


def test_offline_rejects_incomplete_snapshot(hub, hf_home):
    out = fetch("hf://kiln-test/sharded", hub.endpoint, hf_home)
    assert out.returncode == 0, out.stderr
    snap = repo_dir(hf_home, "kiln-test/sharded") / "snapshots" / COMMIT
    (snap / "model-00002-of-00002.safetensors").unlink()
    out = fetch("hf://kiln-test/sharded", hub.endpoint, hf_home, HF_HUB_OFFLINE="1")
    assert out.returncode == 1
    assert "incomplete" in out.stderr


def test_errors(hub, hf_home):
    out = fetch("hf://kiln-test/missing", hub.endpoint, hf_home)
    assert out.returncode == 1 and "404" in out.stderr
    out = fetch("hf://kiln-test/tiny/nope.gguf", hub.endpoint, hf_home)
    assert out.returncode == 1 and "no file 'nope.gguf'" in out.stderr
    for bad in ("hf://kiln-test", "hf://../x/y", "hf://a/b/../../etc/passwd", "hf://a/b@"):
        out = fetch(bad, hub.endpoint, hf_home)
        assert out.returncode == 1 and "INVALID_ARGUMENT" in out.stderr, bad
    out = fetch("no-such-model", hub.endpoint, hf_home)
    assert out.returncode == 1 and "not found" in out.stderr
    assert not any(p.startswith("/../") for p, _, _ in hub.requests)


def test_default_model(tmp_path, hf_home):
    if not os.path.exists(FETCH):
        pytest.skip("kiln_hub_fetch not built")
    out = fetch("default", "http://127.0.0.1:9", hf_home, KILN_CACHE=str(tmp_path / "kc"))
    assert out.returncode == 1 and "scripts/fetch_models.sh" in out.stderr
    (tmp_path / "kc" / "models").mkdir(parents=True)
    (tmp_path / "kc" / "models" / "default.gguf").write_bytes(b"GGUF")
    out = fetch("default", "http://127.0.0.1:9", hf_home, KILN_CACHE=str(tmp_path / "kc"))
    assert out.returncode == 0
    assert out.stdout.strip() == str(tmp_path / "kc" / "models" / "default.gguf")
