"""`models download` for Magenta RT v1 (hub repo google/magenta-realtime) against a local hub server.

The checkpoint tar is a real synthetic t5x checkpoint: after download it is extracted where
upstream v1 extracts it and must load with ``onnx_export.v1.checkpoint.load_params``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bridge import download as dl
from bridge import hub_layout
from bridge.cli import main as cli_main
from onnx_export.v1.checkpoint import load_params
from onnx_export.v1.synth import synth_params, write_checkpoint
from tests.test_download import HubServer

V1_REPO = hub_layout.V1_HUB_REPO_ID
TAR = "checkpoints/llm_base_x4286_c1860k.tar"
SAVED = "savedmodels/ssv2_48k_stereo/decoder"


def _tar_of(directory: Path) -> bytes:
    """A tar whose root holds the checkpoint files, as upstream's hub tars (t5x reads <dir>/checkpoint)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory) -> dict[str, bytes]:
    ckpt = write_checkpoint("tiny", 5, tmp_path_factory.mktemp("ck") / "llm")
    return {
        TAR: _tar_of(ckpt),
        f"{SAVED}/saved_model.pb": b"pb" * 500,
        f"{SAVED}/variables/variables.index": b"index",
        f"{SAVED}/variables/variables.data-00000-of-00001": bytes(range(256)) * 40,
        "savedmodels/ssv2_48k_stereo/decoder_old/saved_model.pb": b"not this one",
        "vocabularies/musiccoca_mv212f_vocab.model": b"spm",
    }


def _manifests(tmp_path: Path, files: dict[str, bytes], tar_sha: str | None = "auto") -> dict:
    mdir = tmp_path / "manifests"
    mdir.mkdir(exist_ok=True)
    sha = hashlib.sha256(files[TAR]).hexdigest() if tar_sha == "auto" else tar_sha
    (mdir / "v1_base.json").write_text(json.dumps({
        "name": "v1_base", "repo_id": V1_REPO, "home": "v1", "needs": ["v1_resources"],
        "files": [{"path": TAR, "kind": "tar", "size": len(files[TAR]), "sha256": sha}]}))
    (mdir / "v1_resources.json").write_text(json.dumps({
        "name": "v1_resources", "repo_id": V1_REPO, "home": "v1",
        "files": [{"path": SAVED, "kind": "dir"}, {"path": "vocabularies/musiccoca_mv212f_vocab.model"}]}))
    return dl.load_manifests(mdir)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGENTA_RT_CACHE_DIR", str(tmp_path / "mrt_cache"))
    monkeypatch.setenv("MAGENTA_HOME", str(tmp_path / "magenta"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path


def test_v1_download_extracts_lists_folders_and_skips(env, hub_files):
    manifests = _manifests(env, hub_files)
    home = env / "mrt_cache" / "assets"  # upstream v1's asset cache
    with HubServer(hub_files, repo=V1_REPO) as hub:
        report = dl.download("v1_base", manifests=manifests, endpoint=hub.url)
        assert TAR in report.downloaded and f"{SAVED}/saved_model.pb" in report.downloaded
        assert not any("decoder_old" in p for p in report.downloaded)  # folder prefix, not a string prefix
        folder = home / "checkpoints" / "llm_base_x4286_c1860k"
        assert folder == hub_layout.v1_checkpoint_dir("base")
        assert not (home / TAR).exists()  # deleted after extraction, like upstream
        params = load_params(folder)
        for key, value in synth_params("tiny", 5):
            np.testing.assert_array_equal(params[key], value)
        assert (home / SAVED / "variables" / "variables.index").read_bytes() == b"index"
        statuses = [s for m in manifests.values() for s in dl.file_status(m)]
        assert all(s.present and s.verified for s in statuses), statuses
        # second run: nothing requested
        n = len(hub.requests)
        report = dl.download("v1_base", manifests=manifests, endpoint=hub.url)
        assert report.downloaded == [] and len(hub.requests) == n


def test_v1_tar_checksum_mismatch_extracts_nothing(env, hub_files):
    manifests = _manifests(env, hub_files, tar_sha="0" * 64)
    home = env / "mrt_cache" / "assets"
    with HubServer(hub_files, repo=V1_REPO) as hub:
        with pytest.raises(dl.ChecksumError, match="checksum mismatch for checkpoints/llm_base"):
            dl.download("v1_base", manifests=manifests, endpoint=hub.url)
    assert not (home / TAR).exists()
    assert not (home / "checkpoints" / "llm_base_x4286_c1860k").exists()
    assert not list((home / "checkpoints").glob("*.partial"))


def test_v1_folder_extracted_by_upstream_is_reused(env, hub_files):
    manifests = _manifests(env, hub_files)
    folder = hub_layout.v1_checkpoint_dir("base")
    write_checkpoint("tiny", 5, folder)  # as upstream's asset.fetch leaves it (no tar, no marker)
    with HubServer(hub_files, repo=V1_REPO) as hub:
        only = {"v1_base": dataclasses.replace(manifests["v1_base"], needs=())}
        report = dl.download("v1_base", manifests=only, endpoint=hub.url)
        assert report.skipped == [TAR] and not hub.requests


def test_v1_missing_folder_on_hub_is_clear(env, hub_files):
    manifests = _manifests(env, hub_files)
    files = {k: v for k, v in hub_files.items() if not k.startswith(SAVED + "/")}
    with HubServer(files, repo=V1_REPO) as hub, pytest.raises(RuntimeError, match=f"{SAVED}/ has no files"):
        dl.download("v1_resources", manifests=manifests, endpoint=hub.url)


def test_shipped_v1_manifests_match_upstream_paths():
    manifests = dl.load_manifests()
    for size in ("base", "large"):
        m = manifests[f"v1_{size}"]
        assert m.repo_id == "google/magenta-realtime" and m.home == "v1"
        assert [(f.path, f.kind) for f in m.files] == [(hub_layout.V1_CHECKPOINTS[size] + ".tar", "tar")]
    res = {f.path: f.kind for f in manifests["v1_resources"].files}
    assert res["savedmodels/ssv2_48k_stereo/decoder"] == "dir"
    assert res["savedmodels/ssv2_48k_stereo/quantizer"] == "dir"
    assert res["vocabularies/musiccoca_mv212f_vocab.model"] == "file"


def test_models_list_shows_v1_home(env, capsys):
    assert cli_main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"Magenta RT v1 assets: {env / 'mrt_cache' / 'assets'}" in out
    assert "v1_base" in out and "checkpoints/llm_base_x4286_c1860k.tar" in out


def test_bad_manifest_kind_is_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"name": "x", "files": [{"path": "a", "kind": "zip"}]}))
    with pytest.raises(ValueError, match="bad kind 'zip'"):
        dl.load_manifests(tmp_path)


def test_models_prepare_v1_exports_a_v1_package(env, tmp_path):
    """prepare: the extracted t5x checkpoint + the mrt2_small checkpoint's codec -> a v1 package (16 levels)."""
    from safetensors.numpy import save_file

    from bridge.commands.models import prepare_v1_package
    from onnx_export.v1.codec import synth_codec_tensors

    ckpt = write_checkpoint("tiny", 5, tmp_path / "extracted")
    with pytest.raises(FileNotFoundError, match="models download mrt2_small"):
        prepare_v1_package(ckpt, "tiny", tmp_path / "pkg", "fp32", musiccoca=False)
    # The codec part of an MRT2 checkpoint (params/soundstream/...), tiny widths, >= 16 codebooks like the real 64.
    hub_layout.checkpoint_path("mrt2_small").parent.mkdir(parents=True)
    save_file(synth_codec_tensors("tiny", 0), str(hub_layout.checkpoint_path("mrt2_small")))
    package = prepare_v1_package(ckpt, "tiny", tmp_path / "pkg", "fp32", musiccoca=False)
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["family"] == "v1" and manifest["codec"]["codes_per_frame"] == 16
    # the CLI path: v1_base expects the base tree, so a tiny checkpoint there is refused with one line
    write_checkpoint("tiny", 5, hub_layout.v1_checkpoint_dir("base"))
    args = ["models", "prepare", "v1_base", "--no-download", "--skip-musiccoca", "--precision", "fp32"]
    assert cli_main([*args, "--out", str(tmp_path / "pkg2")]) == 2
    assert not (tmp_path / "pkg2").exists()
