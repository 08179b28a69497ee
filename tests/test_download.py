"""bridge.download against a hub-shaped HTTP server on 127.0.0.1 (via HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from pathlib import Path
from typing import Self

import numpy as np
import pytest

from bridge import download as dl
from bridge.cli import main as cli_main

REPO = "google/magenta-realtime-2"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Serves ``files`` like the hub's /resolve and /api/models endpoints.

    ``drop_once`` names files whose first full GET is cut half way (the
    connection closes after sending half the body). ``etags`` overrides the
    ETag sent for a file. Every request is recorded in ``requests``.
    """

    def __init__(self, files: dict[str, bytes], repo: str = REPO):
        self.files = files
        self.repo = repo
        self.drop_once: set[str] = set()
        self.etags: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _file(self) -> tuple[str, bytes] | None:
                m = re.fullmatch(rf"/{server.repo}/resolve/([^/]+)/(.+)", self.path)
                if not m or m.group(2) not in server.files:
                    return None
                return m.group(2), server.files[m.group(2)]

            def _headers(self, name: str, body: bytes, length: int, status: int = 200,
                         extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                etag = server.etags.get(name, hashlib.sha256(body).hexdigest())
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(length))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()

            def do_HEAD(self):
                server.requests.append(("HEAD", self.path, {k.lower(): v for k, v in self.headers.items()}))
                found = self._file()
                if found is None:
                    self.send_error(404)
                    return
                name, body = found
                self._headers(name, body, len(body))

            def do_GET(self):
                server.requests.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path.startswith(f"/api/models/{server.repo}/revision/"):
                    payload = json.dumps({
                        "id": server.repo, "sha": COMMIT,
                        "siblings": [{"rfilename": n} for n in server.files],
                    }).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                found = self._file()
                if found is None:
                    self.send_error(404)
                    return
                name, body = found
                rng = self.headers.get("Range")
                start = 0
                if rng:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    part = body[start:]
                    self._headers(name, body, len(part), 206, {
                        "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
                    self.wfile.write(part)
                    return
                self._headers(name, body, len(body))
                if name in server.drop_once:
                    server.drop_once.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def gets(self, name: str) -> list[dict[str, str]]:
        return [h for m, p, h in self.requests if m == "GET" and p.endswith("/" + name)]


def _payload(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


FILES = {
    # > 2 x the hub client's 10 MB write chunk, so a cut at half way leaves data to resume from
    "checkpoints/mrt2_small.safetensors": _payload(24_000_000, 1),
    "resources/musiccoca/spm.model": _payload(20_000, 2),
}


def _manifests(tmp_path: Path, files: dict[str, bytes], shas: dict[str, str | None]) -> Path:
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    small, res = "checkpoints/mrt2_small.safetensors", "resources/musiccoca/spm.model"
    for name, path, needs in (("mrt2_small", small, ["resources"]), ("resources", res, [])):
        entry = {"path": path, "size": len(files[path]), "sha256": shas.get(path, "auto")}
        if entry["sha256"] == "auto":
            entry["sha256"] = hashlib.sha256(files[path]).hexdigest()
        (mdir / f"{name}.json").write_text(json.dumps(
            {"name": name, "repo_id": REPO, "revision": "main", "needs": needs, "files": [entry]}))
    return mdir


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGENTA_HOME", str(tmp_path / "magenta"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path


def test_download_resume_and_skip(env, monkeypatch):
    mdir = _manifests(env, FILES, {})
    monkeypatch.setenv("MRT_BRIDGE_MODELS_DIR", str(mdir))
    big = "checkpoints/mrt2_small.safetensors"
    with HubServer(FILES) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_testtoken")
        hub.drop_once.add(big)
        report = dl.download("mrt2_small")
        assert sorted(report.downloaded) == sorted(FILES)
        home = env / "magenta" / "magenta-rt-v2"
        for name, body in FILES.items():
            assert (home / name).read_bytes() == body  # upstream layout under MAGENTA_HOME
        # the cut connection was resumed with a Range request from where it stopped
        gets = hub.gets(big)
        assert len(gets) == 2 and "range" not in gets[0]
        # (the hub client writes in 10 MB chunks, so it resumes from the last whole chunk)
        start = int(re.fullmatch(r"bytes=(\d+)-", gets[1]["range"]).group(1))
        assert 0 < start <= len(FILES[big]) // 2
        assert all(h.get("authorization") == "Bearer hf_testtoken" for _, _, h in hub.requests)

        # second run: present and verified -> skipped without any request
        n_before = len(hub.requests)
        report = dl.download("mrt2_small")
        assert report.downloaded == [] and sorted(report.skipped) == sorted(FILES)
        assert len(hub.requests) == n_before

        # models list shows them verified, offline
        statuses = dl.file_status(dl.load_manifests()["mrt2_small"])
        assert all(s.present and s.verified for s in statuses)


def test_checksum_mismatch_deletes_file(env):
    big = "checkpoints/mrt2_small.safetensors"
    wrong = hashlib.sha256(b"something else").hexdigest()
    manifests = dl.load_manifests(_manifests(env, FILES, {big: wrong}))
    home = env / "magenta" / "magenta-rt-v2"
    with HubServer(FILES) as hub:
        with pytest.raises(dl.ChecksumError, match="checksum mismatch for checkpoints/mrt2_small"):
            dl.download("mrt2_small", home=home, manifests=manifests, endpoint=hub.url)
        assert not (home / big).exists()
        assert not any(s.verified for s in dl.file_status(manifests["mrt2_small"], home))
        # a file planted in place of the real one is not accepted as valid either
        (home / big).parent.mkdir(parents=True, exist_ok=True)
        (home / big).write_bytes(FILES[big])
        with pytest.raises(dl.ChecksumError):
            dl.download("mrt2_small", home=home, manifests=manifests, endpoint=hub.url)
        assert not (home / big).exists()


@pytest.mark.parametrize("etag_ok", [True, False])
def test_unknown_sha_falls_back_to_hub_etag(env, etag_ok):
    big = "checkpoints/mrt2_small.safetensors"
    manifests = dl.load_manifests(_manifests(env, FILES, {big: None}))
    home = env / "magenta" / "magenta-rt-v2"
    with HubServer(FILES) as hub:
        if not etag_ok:
            hub.etags[big] = "f" * 64
            with pytest.raises(dl.ChecksumError, match="f" * 64):
                dl.download("mrt2_small", home=home, manifests=manifests, endpoint=hub.url)
            assert not (home / big).exists()
        else:
            dl.download("mrt2_small", home=home, manifests=manifests, endpoint=hub.url)
            assert (home / big).read_bytes() == FILES[big]


def test_existing_upstream_folder_is_reused(env):
    """Files already in MAGENTA_HOME (e.g. from upstream's tools) are hashed, not refetched."""
    manifests = dl.load_manifests(_manifests(env, FILES, {}))
    home = env / "magenta" / "magenta-rt-v2"
    for name, body in FILES.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(body)
    with HubServer(FILES) as hub:
        report = dl.download("all", home=home, manifests=manifests, endpoint=hub.url)
        assert sorted(report.skipped) == sorted(FILES) and not hub.requests


def test_errors_are_clear(env):
    manifests = dl.load_manifests(_manifests(env, FILES, {}))
    with pytest.raises(ValueError, match="unknown model 'mrt2_huge'"):
        dl.resolve_targets("mrt2_huge", manifests)
    with HubServer({}) as hub, pytest.raises(RuntimeError, match="404"):  # missing on the server
        dl.download("resources", home=env / "h", manifests=manifests, endpoint=hub.url)


def test_models_list_cli(env, monkeypatch, capsys):
    monkeypatch.setenv("MRT_BRIDGE_MODELS_DIR", str(_manifests(env, FILES, {})))
    home = env / "magenta" / "magenta-rt-v2"
    (home / "resources/musiccoca").mkdir(parents=True)
    (home / "resources/musiccoca/spm.model").write_bytes(b"partial")
    assert cli_main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "mrt2_small" in out and "missing" in out and "needs: resources" in out
    assert "wrong size (expected 20.0 KB)" in out
