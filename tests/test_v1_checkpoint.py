"""Magenta RT v1 checkpoints: t5x layout round trip, the upstream parameter tree, synthetic weights, the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgpack
import numpy as np
import pytest

from bridge import cli
from onnx_export.v1 import config as v1
from onnx_export.v1.checkpoint import (
    V1CheckpointError,
    check_params,
    choose_chunk_shape,
    detect_size,
    load_params,
    param_shapes,
    read_zarr,
    write_checkpoint_dir,
)
from onnx_export.v1.synth import synth_params, write_checkpoint


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_checkpoint("tiny", 3, tmp_path_factory.mktemp("v1") / "llm_tiny")


def test_config_matches_upstream_layout():
    assert v1.ENCODER_LENGTH == 1006 and v1.DECODER_LENGTH == 800
    assert (v1.CODEC_OFFSET, v1.STYLE_OFFSET, v1.VOCAB_SIZE) == (2, 17410, 23554)
    assert v1.NUM_EMBEDDINGS == 29824  # 29698 rounded up to a multiple of 128 (t5x)
    assert v1.CROSSFADE_SAMPLES == 1920 and v1.CHUNK_SAMPLES == 96000
    with pytest.raises(ValueError, match="unknown v1 size"):
        v1.get_size("huge")


def test_round_trip_is_exact(tiny_dir):
    params = load_params(tiny_dir)
    again = dict(synth_params("tiny", 3))
    assert params.keys() == again.keys() == param_shapes("tiny").keys()
    for k, v in again.items():
        assert params[k].dtype == np.float32
        np.testing.assert_array_equal(params[k], v, err_msg=k)
    assert detect_size(params) == "tiny"


def test_layout_is_t5x(tiny_dir):
    """The msgpack file and zarr arrays are what t5x's Checkpointer writes and restores strictly."""
    tree = msgpack.unpackb((tiny_dir / "checkpoint").read_bytes(), raw=False, strict_map_key=False)
    assert tree["version"] == 3
    opt = tree["optimizer"]
    spec = opt["target"]["encoder"]["layers_0"]["attention"]["query"]["kernel"]
    assert spec["driver"] == "zarr" and spec["kvstore"] == {
        "driver": "file",
        "path": "target.encoder.layers_0.attention.query.kernel",
    }
    meta = json.loads((tiny_dir / spec["kvstore"]["path"] / ".zarray").read_text())
    assert meta["zarr_format"] == 2 and meta["dtype"] == "<f4" and meta["compressor"]["id"] == "gzip"
    # Adafactor state: one entry per parameter with v_row / v_col / v / m; tiny dims are never factored.
    states = opt["state"]["param_states"]
    emb = states["token_embedder"]["embedding"]
    assert set(emb) == {"v_row", "v_col", "v", "m"}
    assert emb["v"]["kvstore"]["path"] == "state.param_states.token_embedder.embedding.v"
    assert "step" in opt["state"]


def test_adafactor_factors_large_dims(tmp_path):
    out = write_checkpoint_dir(
        {"a/kernel": np.ones((256, 128), np.float32), "a/scale": np.ones(4, np.float32)}, tmp_path / "c"
    )
    tree = msgpack.unpackb((out / "checkpoint").read_bytes(), raw=False, strict_map_key=False)
    st = tree["optimizer"]["state"]["param_states"]["a"]
    assert isinstance(st["kernel"]["v"], msgpack.ExtType)  # (1,) placeholder inline
    assert isinstance(st["kernel"]["v_row"], msgpack.ExtType)
    assert st["scale"]["v"]["driver"] == "zarr"


def test_zarr_edge_chunks_and_bfloat16(tmp_path):
    """Arrays written by other tools: several chunks with a partial edge chunk, bfloat16, missing chunks."""
    arr = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    d = tmp_path / "x"
    d.mkdir()
    meta = {
        "chunks": [2, 3],
        "compressor": {"id": "gzip"},
        "dtype": "bfloat16",
        "fill_value": None,
        "filters": None,
        "order": "C",
        "shape": [5, 3],
        "zarr_format": 2,
    }
    (d / ".zarray").write_text(json.dumps(meta))
    bf = (arr.view(np.uint32) >> 16).astype("<u2")  # these small integers are exact in bfloat16
    for i in range(3):
        block = np.zeros((2, 3), "<u2")
        rows = bf[2 * i : 2 * i + 2]
        block[: len(rows)] = rows
        if i != 1:  # chunk 1 never written: reads as fill (0)
            (d / f"{i}.0").write_bytes(gzip.compress(block.tobytes()))
    want = arr.copy()
    want[2:4] = 0
    np.testing.assert_array_equal(read_zarr(d), want)


def test_chunk_shape_follows_t5x():
    assert choose_chunk_shape((16, 32), 4) == [16, 32]
    big = choose_chunk_shape((29824, 1024), 4)  # 122 MB: split along the largest dim
    assert big[1] == 1024 and 29824 % big[0] == 0 and big[0] * 1024 * 4 <= 64 * 1024 * 1024


def test_write_is_atomic_and_replaces(tmp_path):
    out = write_checkpoint("tiny", 0, tmp_path / "ck")
    first = load_params(out)["decoder/decoder_norm/scale"].copy()

    def failing():
        yield "a/kernel", np.ones((2, 2), np.float32)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_checkpoint_dir(failing(), out)
    np.testing.assert_array_equal(load_params(out)["decoder/decoder_norm/scale"], first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp dir left behind
    write_checkpoint("tiny", 1, out)
    assert not np.array_equal(load_params(out)["decoder/decoder_norm/scale"], first)


def test_bad_inputs_give_clear_errors(tmp_path, tiny_dir):
    with pytest.raises(V1CheckpointError, match="not a t5x checkpoint directory"):
        load_params(tmp_path)
    (tmp_path / "checkpoint").write_bytes(b"\xc1garbage")
    with pytest.raises(V1CheckpointError, match="not a t5x msgpack"):
        load_params(tmp_path)
    params = load_params(tiny_dir)
    params.pop("encoder/encoder_norm/scale")
    params["decoder/logits_dense/kernel"] = np.zeros((3, 3), np.float32)
    with pytest.raises(V1CheckpointError, match="1 missing .*1 with the wrong shape"):
        check_params(params, "tiny")


@pytest.mark.parametrize("size", ["tiny", "base", "large"])
def test_param_tree_equals_upstream_init(size):
    """tests/data/v1/param_tree_<size>.tsv: upstream's model init (jax.eval_shape), recorded by
    tests/oracle_v1/param_tree.py in the v1 oracle env (see tests/data/v1/README.md)."""
    path = Path(__file__).parent / "data" / "v1" / f"param_tree_{size}.tsv"
    recorded = {}
    for line in path.read_text().splitlines():
        key, shape = line.split("\t")
        recorded[key] = tuple(int(x) for x in shape.strip("()").split(",") if x.strip())
    assert param_shapes(size) == recorded


def test_published_sizes_have_the_gin_widths():
    base, large = param_shapes("base"), param_shapes("large")
    assert base["encoder/layers_11/mlp/wi_0/kernel"] == (768, 2048)
    assert "decoder/decoder/temporal_decoder/layers_19/self_attention/query/kernel" in base
    assert "decoder/decoder/depth_decoder/depth_layers_3/mlp/wo/kernel" in large
    assert large["encoder/layers_23/attention/query/kernel"] == (1024, 1024)
    assert large["token_embedder/embedding"] == (29824, 1024)
    n_base = sum(int(np.prod(s)) for s in base.values())
    assert 300e6 < n_base < 400e6, n_base


def test_cli_writes_v1_and_refuses_wrong_size(tmp_path, capsys):
    out = tmp_path / "v1tiny"
    assert cli.main(["synth-checkpoint", "--family", "v1", "--size", "tiny", "--seed", "3", "--out", str(out)]) == 0
    assert "v1 t5x checkpoint" in capsys.readouterr().out
    assert detect_size(load_params(out)) == "tiny"
    assert cli.main(["synth-checkpoint", "--family", "v1", "--size", "mrt2_small", "--out", str(tmp_path / "x")]) == 2
    assert "not a v1 size" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_large_arrays_are_split_into_chunks(tmp_path, monkeypatch):
    """Arrays over t5x's 64 MiB chunk target (the large size's embedding) are written as several chunks."""
    import onnx_export.v1.checkpoint as ck

    monkeypatch.setattr(ck, "_CHUNK_BYTES", 4 * 64)  # 64 float32 per chunk
    arr = np.random.default_rng(0).standard_normal((24, 10)).astype(np.float32)
    spec = ck.write_zarr(tmp_path / "a", arr)
    assert spec["metadata"]["chunks"] == [8, 5]  # largest dim split first, like t5x
    assert len(list((tmp_path / "a").glob("[0-9]*"))) == 3 * 2
    np.testing.assert_array_equal(read_zarr(tmp_path / "a"), arr)
