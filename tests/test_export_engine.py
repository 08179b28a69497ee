"""Model packages and the frame engine on a tiny random checkpoint (real ORT sessions)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bridge import cli
from bridge.conditioning import Conditioning, default_vector
from bridge.engine import Engine, codes_to_tokens, tokens_to_codes
from bridge.package import PackageError, load_package
from onnx_export.mrt2.export import export_package
from onnx_export.package_writer import package_digest


def test_export_is_deterministic(tiny_checkpoint, tiny_package, tmp_path):
    again = export_package(tiny_checkpoint, "tiny", tmp_path / "again", progress=False)
    assert package_digest(again) == package_digest(tiny_package)


def test_manifest_records_shapes_and_source(tiny_package, tiny_checkpoint):
    from bridge.package import file_sha256 as sha256_file

    pkg = load_package(tiny_package, verify=True)
    m = pkg.manifest
    assert m["source_checkpoint"]["sha256"] == sha256_file(tiny_checkpoint)
    assert m["model"]["size"] == "tiny" and m["precision"] == "fp32"
    temporal = m["graphs"]["temporal"]
    # every past.* state input has a matching present.* output of the same shape
    for name, spec in temporal["inputs"].items():
        if name.startswith("past."):
            assert temporal["outputs"]["present." + name[5:]]["shape"] == spec["shape"]
    # one KV window per row (streams x guidance rows), sampled tokens per stream
    assert temporal["inputs"]["past.self_k.0"]["shape"] == ["rows", 4, 6, 32]  # ring of W + 1 = 6 slots
    assert m["graphs"]["depth"]["outputs"]["tokens"]["shape"] == ["streams", 12]
    assert m["graphs"]["depth"]["inputs"]["guidance"]["shape"] == ["streams", "rows_per_stream"]


def test_engine_same_seed_same_frames_different_seed_differs(tiny_package):
    cond = Conditioning(style_tokens=np.arange(12) * 50).to_vector()

    def run(seed):
        e = Engine(tiny_package, provider="cpu", seed=seed)
        return [e.step(cond) for _ in range(12)]

    a, b, c = run(1), run(1), run(2)
    assert all((x.codes == y.codes).all() and np.array_equal(x.audio, y.audio) for x, y in zip(a, b))
    assert any((x.codes != z.codes).any() for x, z in zip(a, c))


def test_engine_tokens_are_in_each_levels_range(tiny_package):
    e = Engine(tiny_package, provider="cpu", seed=3)
    for _ in range(5):
        f = e.step(default_vector(), temperature=1.3, top_k=40)
        lo = 6 + 1024 * np.arange(12)
        assert ((f.tokens >= lo) & (f.tokens < lo + 1024)).all()
        assert (tokens_to_codes(f.tokens) == f.codes).all() and (codes_to_tokens(f.codes) == f.tokens).all()
        assert f.audio.shape == (1920, 2) and f.audio.dtype == np.float32
        assert np.isfinite(f.audio).all() and np.abs(f.audio).max() <= 1.0


def test_top_k_one_is_independent_of_seed(tiny_package):
    a = Engine(tiny_package, provider="cpu", seed=1)
    b = Engine(tiny_package, provider="cpu", seed=99)
    for _ in range(8):
        assert (a.step(default_vector(), 1.3, 1).codes == b.step(default_vector(), 1.3, 1).codes).all()


def test_reset_restarts_the_stream(tiny_package):
    e = Engine(tiny_package, provider="cpu", seed=4)
    first = [e.step(default_vector()).codes for _ in range(6)]
    e.reset(seed=4)
    assert e.frame_index == 0
    assert all((x == e.step(default_vector()).codes).all() for x in first)


def test_engine_rejects_bad_inputs_without_losing_state(tiny_package):
    e = Engine(tiny_package, provider="cpu", seed=5)
    e.step(default_vector())
    bad = default_vector()
    bad[0] = 5000
    with pytest.raises(ValueError, match="conditioning"):
        e.step(bad)
    with pytest.raises(ValueError, match="temperature"):
        e.step(default_vector(), temperature=float("nan"))
    with pytest.raises(ValueError, match="top_k"):
        e.step(default_vector(), top_k=0)
    assert e.frame_index == 1  # nothing advanced


def test_corrupt_or_incomplete_packages_are_refused(tiny_package, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_package, broken)
    with open(broken / "depth.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 16)
    with pytest.raises(PackageError, match="checksum"):
        load_package(broken, verify=True)
    (broken / "temporal.onnx").unlink()
    with pytest.raises(PackageError, match="temporal.onnx"):
        load_package(broken)
    manifest = json.loads((tiny_package / "manifest.json").read_text())
    manifest["format_version"] = 99
    odd = tmp_path / "odd"
    shutil.copytree(tiny_package, odd)
    (odd / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="version 99"):
        load_package(odd)
    with pytest.raises(PackageError, match="not found"):
        load_package(tmp_path / "nowhere")


def test_cli_synth_and_export(tmp_path, capsys):
    ckpt = tmp_path / "c.safetensors"
    assert cli.main(["synth-checkpoint", "--size", "tiny", "--seed", "1", "--out", str(ckpt)]) == 0
    assert cli.main(["export", "--checkpoint", str(ckpt), "--size", "tiny", "--out", str(tmp_path / "p")]) == 0
    assert load_package(tmp_path / "p").size == "tiny"
    # a mismatched size is a clear one-line error, not a traceback
    assert cli.main(["export", "--checkpoint", str(ckpt), "--size", "tiny_base", "--out", str(tmp_path / "q")]) == 2
    assert "has shape" in capsys.readouterr().err


def test_graphs_over_the_protobuf_limit_keep_weights_in_checked_side_files(tiny_checkpoint, tiny_package,
                                                                           tmp_path, monkeypatch):
    """The path mrt2_base's 9 GB temporal graph takes, exercised on the tiny model with a 1 MB limit."""
    import onnx_export.package_writer as ex

    monkeypatch.setattr(ex, "INLINE_LIMIT", 1 << 20)
    pkg_dir = export_package(tiny_checkpoint, "tiny", tmp_path / "big", progress=False)
    entry = load_package(pkg_dir, verify=True).manifest["graphs"]["temporal"]
    assert entry["data_file"] == "temporal.onnx.data" and (pkg_dir / entry["data_file"]).stat().st_size > 1 << 20
    # Same numbers as the inline package.
    a = Engine(tiny_package, provider="cpu", seed=2)
    b = Engine(pkg_dir, provider="cpu", seed=2)
    for _ in range(4):
        assert (a.step(default_vector()).codes == b.step(default_vector()).codes).all()
    with open(pkg_dir / entry["data_file"], "r+b") as f:
        f.seek(4096)
        f.write(b"\x00" * 64)
    with pytest.raises(PackageError, match="temporal.onnx.data"):
        load_package(pkg_dir, verify=True)
    (pkg_dir / entry["data_file"]).unlink()
    with pytest.raises(PackageError, match="temporal.onnx.data"):
        load_package(pkg_dir)


def test_a_failed_export_leaves_nothing_behind(tiny_checkpoint, tmp_path, monkeypatch):
    """Each export stages in its own folder (concurrent exports never share one) and removes it on failure."""
    import onnx_export.mrt2.export as mrt2_export

    calls = []

    def failing_convert(model, *args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return model

    monkeypatch.setattr(mrt2_export, "convert", failing_convert)
    with pytest.raises(RuntimeError, match="disk full"):
        export_package(tiny_checkpoint, "tiny", tmp_path / "pkg", progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    out = export_package(tiny_checkpoint, "tiny", tmp_path / "pkg", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"] and (out / "manifest.json").is_file()
    assert out.stat().st_mode & 0o777 == 0o755  # not mkdtemp's private 0o700
