"""Reading upstream checkpoints: published layouts, and clear errors for bad files."""

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from onnx_export.mrt2 import checkpoint as ck
from onnx_export.mrt2.configs import SIZES, get_config
from onnx_export.mrt2.synth import synth_tensors
from onnx_export.tensors import CheckpointError, check_tensors, load_tensors

# The published tensor lists (names, shapes) of both checkpoints, kept in the repository.
REFERENCE = Path(__file__).resolve().parent / "data"


def _published(size: str) -> dict:
    path = REFERENCE / f"{size}_tensors.tsv"
    shapes = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _ = line.split("\t")
        if key.startswith("params/depthformer/"):
            shapes[key] = tuple(int(x) for x in shape.strip("()").split(",") if x.strip())
    return shapes


@pytest.mark.parametrize("size", ["mrt2_small", "mrt2_base"])
def test_expected_layout_equals_published_checkpoint(size):
    assert ck.depthformer_shapes(SIZES[size]) == _published(size)


@pytest.fixture(scope="module")
def tiny_tensors():
    return synth_tensors("tiny", seed=5)


def test_synth_checkpoint_is_complete_and_non_degenerate(tiny_tensors):
    expected = ck.depthformer_shapes(get_config("tiny"))
    check_tensors(tiny_tensors, expected, "synth")
    for key in expected:
        arr = tiny_tensors[key]
        assert np.std(arr) > 0, f"{key} is constant"
        assert not np.all(arr == 0) and not np.all(arr == 1), key


def _write(tmp_path, tensors, name="bad.safetensors"):
    path = tmp_path / name
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    return path


def test_missing_tensor_is_named(tmp_path, tiny_tensors):
    key = "params/depthformer/decoder/depth_body/final_ln/scale"
    path = _write(tmp_path, {k: v for k, v in tiny_tensors.items() if k != key})
    with pytest.raises(CheckpointError, match=f"missing tensor {key}"):
        ck.load_depthformer(path, get_config("tiny"))


def test_misshaped_tensor_is_named(tmp_path, tiny_tensors):
    key = ck.EMBEDDING
    bad = dict(tiny_tensors)
    bad[key] = bad[key][:, :64]
    path = _write(tmp_path, bad)
    with pytest.raises(CheckpointError, match=rf"{key} has shape \(12294, 64\), expected \(12294, 128\)"):
        ck.load_depthformer(path, get_config("tiny"))


def test_wrong_size_is_reported_as_shape_mismatch(tmp_path, tiny_tensors):
    path = _write(tmp_path, tiny_tensors)
    with pytest.raises(CheckpointError, match="as tiny_base"):
        ck.load_depthformer(path, get_config("tiny_base"))
    assert ck.guess_size(path) == "tiny"


def test_nan_tensor_is_rejected(tmp_path, tiny_tensors):
    bad = dict(tiny_tensors)
    key = f"{ck.ENCODER}/encoder_ln/bias"
    bad[key] = bad[key].copy()
    bad[key][3] = np.nan
    with pytest.raises(CheckpointError, match="NaN"):
        ck.load_depthformer(_write(tmp_path, bad), get_config("tiny"))


def test_corrupt_file_gives_clear_error(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_tensors(path)
    with pytest.raises(FileNotFoundError):
        load_tensors(tmp_path / "absent.safetensors")
