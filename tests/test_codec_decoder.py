"""SpectroStream streaming decoder graph: structure, weight validation, behaviour (no oracle)."""

from __future__ import annotations

from functools import partial

import numpy as np
import onnxruntime as ort
import pytest

from bridge import io_names
from bridge.runtime import StatefulSession
from onnx_export.spectrostream import (
    build_codec_decoder,
    codec_config,
    codec_manifest_entry,
    decoder_tensor_shapes,
    synth_spectrostream_tensors,
)

FRAME = 1920


@pytest.fixture(scope="module")
def tiny():
    cfg = codec_config("tiny")
    weights = synth_spectrostream_tensors(cfg, np.random.default_rng(0))
    return cfg, weights, build_codec_decoder(weights, cfg)


def session(model) -> StatefulSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return StatefulSession(sess, name="codec_decoder")


def decode(sess: StatefulSession, codes: np.ndarray) -> np.ndarray:
    return np.concatenate([sess.run({io_names.CODES: codes[i:i + 1]})[io_names.AUDIO][0]
                           for i in range(len(codes))])


def test_synth_tensors_match_layout_and_are_not_degenerate():
    cfg = codec_config("tiny")
    w = synth_spectrostream_tensors(cfg, np.random.default_rng(3))
    shapes = decoder_tensor_shapes(cfg)
    assert set(w) == set(shapes)
    for key, arr in w.items():
        assert arr.shape == shapes[key] and arr.dtype == np.float32, key
        assert key.startswith("params/soundstream/")
        assert np.std(arr) > 0, f"{key} is constant"


def test_full_layout_matches_published_checkpoint():
    # Names/shapes copied from mrt2_small's decoder part (docs: mrt2_small_tensors.tsv).
    shapes = decoder_tensor_shapes(codec_config("full"))
    assert len(shapes) == 49
    p = "params/soundstream/decoder/"
    assert shapes["params/soundstream/quantizer/embedding"] == (64, 1024, 256)
    assert shapes[p + "decoder_0/conv2dtranspose_4x3/conv/kernel"] == (4, 3, 512, 1024)
    assert shapes[p + "decoder_1/conv2dtranspose_4x4/conv/kernel"] == (4, 4, 512, 256)
    assert shapes[p + "decoder_4/conv2dtranspose_3x6/conv/kernel"] == (3, 6, 256, 128)
    assert shapes[p + "input_layer/shortcut_layer/conv1x1_b2/conv/kernel"] == (1, 1, 2560, 2560)
    assert shapes[p + "output_layer/base_conv_last/conv/kernel"] == (7, 7, 64, 2)
    assert p + "decoder_2/shortcut_layer/conv1x1/conv/kernel" not in shapes


def test_missing_tensor_is_named(tiny):
    cfg, weights, _ = tiny
    key = "params/soundstream/decoder/decoder_3/conv2d_3x3/conv/bias"
    bad = {k: v for k, v in weights.items() if k != key}
    with pytest.raises(ValueError, match=key):
        build_codec_decoder(bad, cfg)


def test_wrong_shape_is_named(tiny):
    cfg, weights, _ = tiny
    key = "params/soundstream/decoder/decoder_1/conv2dtranspose_4x4/conv/kernel"
    bad = dict(weights)
    bad[key] = np.zeros((4, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"decoder_1/conv2dtranspose_4x4/conv/kernel.*\(4, 4, 3, 3\)"):
        build_codec_decoder(bad, cfg)
    # Tiny weights given to the full config: a shape error naming the tensor, not a crash.
    with pytest.raises(ValueError, match=r"quantizer/embedding.*\(12, 1024, 16\)"):
        build_codec_decoder(weights, codec_config("full"))


def test_graph_io_and_initializer_names(tiny):
    _cfg, weights, model = tiny
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    assert io_names.CODES in inputs and io_names.AUDIO in outputs
    pasts = {n for n in inputs if n.startswith(io_names.PAST)}
    assert pasts and {io_names.present(io_names.state_name(p)) for p in pasts} <= outputs
    for inp in model.graph.input:      # fixed shapes everywhere
        assert all(d.dim_value > 0 for d in inp.type.tensor_type.shape.dim), inp.name
    inits = {t.name for t in model.graph.initializer}
    for key in weights:
        if key.endswith(("/kernel", "/bias")):
            assert key in inits, key
    assert "params/soundstream/quantizer/embedding[:12]" in inits


def test_stream_latency_state_and_reset(tiny):
    cfg, _, model = tiny
    sess = session(model)
    codes = np.random.default_rng(5).integers(0, 1024, (8, 12))
    a = decode(sess, codes)
    assert a.shape == (8 * FRAME, 2) and a.dtype == np.float32
    assert codec_manifest_entry(cfg)["latency_frames"] == 1
    assert not a[:FRAME].any(), "first frame must be silent (upstream decoder lookahead)"
    assert np.abs(a[FRAME:]).max() > 1e-3
    assert np.abs(a).max() < 1.0, "synthetic decoder output should stay in audio range"
    # The state carries: frame 3 depends on the earlier frames' codes.
    other = codes.copy()
    other[1] = (other[1] + 17) % 1024
    sess.reset()
    b = decode(sess, other)
    assert not np.allclose(a[3 * FRAME:4 * FRAME], b[3 * FRAME:4 * FRAME])
    # A reset reproduces the first run exactly.
    sess.reset()
    np.testing.assert_array_equal(decode(sess, codes), a)


def _run_op_stream(fn, weights, key, shape, arg, xs):
    """Stream ``xs`` (list of [N,C,T,F] chunks) through a one-op graph built by ``fn``."""
    from onnx_export.graph import GraphBuilder

    b = GraphBuilder("t")
    x = b.input("x", np.float32, list(shape))
    y, yshape = fn(b, x, key, weights, shape, *([] if arg is None else [arg]))
    b.output(y, "y", np.float32, list(yshape))
    sess = session(b.build())
    return np.concatenate([sess.run({"x": c})["y"] for c in xs], axis=2)


@pytest.mark.parametrize("kernel,strides", [((4, 3), (2, 1)), ((4, 4), (2, 2)), ((3, 4), (1, 2)),
                                            ((3, 6), (1, 3)), ((3, 3), (1, 1)), ((5, 7), (2, 3))])
def test_polyphase_conv_transpose_matches_ort_conv_transpose(kernel, strides):
    from onnx_export.spectrostream_ops import (
        streaming_conv_transpose,
        streaming_conv_transpose_polyphase,
    )

    rng = np.random.default_rng(7)
    cin, cout, n, t, f = 5, 6, 2, 3, 7
    key = "params/soundstream/decoder/x/conv"
    weights = {key + "/kernel": rng.standard_normal((*kernel, cin, cout)).astype(np.float32),
               key + "/bias": rng.standard_normal(cout).astype(np.float32)}
    xs = [rng.standard_normal((n, cin, t, f)).astype(np.float32) for _ in range(4)]
    ref = _run_op_stream(streaming_conv_transpose, weights, key, (n, cin, t, f),
                                strides, xs)
    got = _run_op_stream(streaming_conv_transpose_polyphase, weights, key,
                                (n, cin, t, f), strides, xs)
    assert got.shape == ref.shape == (n, cout, 4 * t * strides[0], f * strides[1])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # Winograd F(4,3) in time: applies to 3-tap, time-stride-1 kernels on 4 new rows.
    x4 = [rng.standard_normal((n, cin, 4, f)).astype(np.float32) for _ in range(4)]
    ref4 = _run_op_stream(streaming_conv_transpose, weights, key, (n, cin, 4, f), strides, x4)
    wino = _run_op_stream(partial(streaming_conv_transpose_polyphase, winograd=True), weights,
                          key, (n, cin, 4, f), strides, x4)
    np.testing.assert_allclose(wino, ref4, rtol=1e-4, atol=5e-6 * np.abs(ref4).max())



def _conv_weights(rng, kernel, cin, cout, name="x"):
    key = f"params/soundstream/decoder/{name}/conv"
    return key, {key + "/kernel": rng.standard_normal((*kernel, cin, cout)).astype(np.float32),
                 key + "/bias": rng.standard_normal(cout).astype(np.float32)}


def test_polyphase_kernels_have_no_structural_zero_taps():
    from onnx_export.spectrostream_ops import polyphase_transpose_kernels

    rng = np.random.default_rng(1)
    # decoder_4's 3x6 / (1, 3) kernel: phases 0,1 read bins r-1, r; phase 2 reads r, r+1.
    w = rng.standard_normal((4, 5, 3, 6)).astype(np.float32)
    groups = polyphase_transpose_kernels(w, (1, 3), (1, 2))
    assert [(g.shape, pads) for g, pads in groups] == [((10, 4, 3, 2), (1, 0)),
                                                        ((5, 4, 3, 2), (0, 1))]
    taps = sum(g.size for g, _ in groups)
    assert taps == w.size and all(np.abs(g).min() > 0 for g, _ in groups)


@pytest.mark.parametrize("kernel,cout,phases", [((7, 7), 2, 4), ((7, 7), 3, 8), ((3, 3), 5, 2),
                                                ((1, 1), 2, 4), ((3, 4), 2, 4)])
def test_space_to_depth_conv_matches_streaming_conv(kernel, cout, phases):
    from onnx_export.spectrostream_ops import streaming_conv, streaming_conv_space_to_depth

    rng = np.random.default_rng(9)
    cin, n, t, f = 6, 2, 3, 16
    key, weights = _conv_weights(rng, kernel, cin, cout)
    xs = [rng.standard_normal((n, cin, t, f)).astype(np.float32) for _ in range(4)]
    ref = _run_op_stream(streaming_conv, weights, key, (n, cin, t, f), None, xs)
    got = _run_op_stream(streaming_conv_space_to_depth, weights, key, (n, cin, t, f), phases, xs)
    assert got.shape == ref.shape == (n, cout, 4 * t, f)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rate", [(1, 2), (1, 3), (2, 2), (2, 1)])
def test_upsample_nearest_repeats_frames_and_bins(rate):
    from onnx_export.graph import GraphBuilder
    from onnx_export.spectrostream_ops import upsample_nearest

    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = GraphBuilder("t")
    y, shape = upsample_nearest(b, b.input("x", np.float32, list(x.shape)), x.shape, rate)
    b.output(y, "y", np.float32, list(shape))
    got = session(b.build()).run({"x": x})["y"]
    np.testing.assert_array_equal(got, x.repeat(rate[0], axis=2).repeat(rate[1], axis=3))


@pytest.mark.parametrize("kernel,t", [((3, 3), 4), ((3, 7), 4), ((3, 1), 4), ((3, 3), 2)])
def test_winograd_time_conv_matches_streaming_conv(kernel, t):
    from onnx_export.spectrostream_ops import streaming_conv, streaming_conv_winograd

    rng = np.random.default_rng(4)
    cin, cout, n, f = 8, 16, 2, 12
    key, weights = _conv_weights(rng, kernel, cin, cout)
    xs = [rng.standard_normal((n, cin, t, f)).astype(np.float32) for _ in range(5)]
    ref = _run_op_stream(streaming_conv, weights, key, (n, cin, t, f), None, xs)
    got = _run_op_stream(streaming_conv_winograd, weights, key, (n, cin, t, f), None, xs)
    assert got.shape == ref.shape == (n, cout, 5 * t, f)
    # Winograd's transforms cost a few ulps of the output scale.
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=5e-6 * np.abs(ref).max())


def test_time_major_handover_matches_nchw_chain():
    """Winograd up-conv (time-major out) -> ELU -> Winograd conv (time-major in) == NCHW chain."""
    from onnx_export.graph import GraphBuilder
    from onnx_export.spectrostream_ops import (
        streaming_conv,
        streaming_conv_transpose,
        streaming_conv_transpose_polyphase,
        streaming_conv_winograd,
    )

    rng = np.random.default_rng(6)
    n, c, t, f = 2, 8, 4, 6
    up_key, w_up = _conv_weights(rng, (3, 6), c, 16, name="up")
    conv_key, w_conv = _conv_weights(rng, (3, 3), 16, 16)
    weights = {**w_up, **w_conv}

    def run(fast: bool) -> np.ndarray:
        b = GraphBuilder("t")
        x = b.input("x", np.float32, [n, c, t, f])
        if fast:
            h, hs = streaming_conv_transpose_polyphase(b, x, up_key, weights, (n, c, t, f), (1, 3),
                                                       winograd=True, time_major_out=True)
            y, ys = streaming_conv_winograd(b, b.op("Elu", [h]), conv_key, weights, hs,
                                            time_major_in=True)
        else:
            h, hs = streaming_conv_transpose(b, x, up_key, weights, (n, c, t, f), (1, 3))
            y, ys = streaming_conv(b, b.op("Elu", [h]), conv_key, weights, hs)
        b.output(y, "y", np.float32, list(ys))
        sess = session(b.build())
        return np.concatenate([sess.run({"x": xi})["y"] for xi in xs], axis=2)

    xs = [rng.standard_normal((n, c, t, f)).astype(np.float32) for _ in range(4)]
    ref = run(False)
    assert ref.shape == (n, 16, 4 * t, 3 * f)
    np.testing.assert_allclose(run(True), ref, rtol=1e-4, atol=5e-6 * np.abs(ref).max())


def test_nodes_are_named_by_scope(tiny):
    """ORT profiles name nodes: every node says which block and layer it belongs to."""
    _cfg, _weights, model = tiny
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names)
    assert all(n.startswith("codec_decoder/") for n in names), [n for n in names if not n.startswith("codec_decoder/")][:3]
    convs = {n.name.rsplit("/", 1)[0] for n in model.graph.node if n.op_type == "Conv"}
    assert "codec_decoder/decoder_3/conv2d_3x3" in convs
    assert "codec_decoder/decoder_1/conv2dtranspose_4x4" in convs
    assert "codec_decoder/output_layer" in convs
    assert any(n.startswith("codec_decoder/decoder_4/shortcut/Resize_") for n in names)


def test_graph_builder_scopes_nest_and_unwind():
    from onnx_export.graph import GraphBuilder

    b = GraphBuilder("t")
    x = b.input("x", np.float32, [2])
    with b.scope("a"):
        y = b.op("Relu", [x])
        with b.scope("b"):
            z = b.op("Neg", [y], name="named_out")
        with pytest.raises(RuntimeError):
            with b.scope("c"):
                raise RuntimeError
        w = b.op("Abs", [z])
    v = b.op("Exp", [w])
    assert [n.name for n in b.nodes] == [f"a/Relu_{y.split('_')[1]}", "a/b/Neg_named_out",
                                         f"a/Abs_{w.split('_')[1]}", f"n_{v}"]
