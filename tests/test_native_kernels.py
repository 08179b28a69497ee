"""mrt-bridge's int8 GEMV kernel as ORT custom operators (bridge/kernels): the library
builds, the operators compute the rows schemes' MatMulIntegerToFloat exactly (and, fused, the
activation quantization before it bit for bit), the relabelling takes only the nodes they
compute, and the engine on them gives ORT's logits.

The operators run on any AVX2 CPU (``MRT_BRIDGE_NATIVE_KERNELS=on``), so these tests run on
AMX machines too, where ``auto`` leaves ORT its own kernels. ``VARIANTS`` runs the arithmetic
tests on the AVX2 variant and on this CPU's own (the AVX-512 VNNI one where it has VNNI).
"""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bridge.bench import machine
from bridge.kernels import build, rows_matmul
from bridge.kernels.elu_quantize import OP as ELU_OP
from bridge.kernels.elu_quantize import fuse_elu_quantize
from bridge.runtime import int8_matmul_kernel, native_int8_kernel, session_options
from onnx_export import precision as P
from onnx_export.mrt2.export import export_package
from tests.ci import missing
from tests.test_precision import FRAMES, conditioning, rows_reference, teacher_forced_logits

CPU = ["CPUExecutionProvider"]
VARIANTS = ["on", "avx2"]  # switch values: this CPU's variant, the AVX2 one


@pytest.fixture(scope="module")
def library():
    if "avx2" not in machine()["isa"]:
        pytest.skip("the kernel needs AVX2; this CPU has none (the engine keeps ORT's kernels)")
    if build.compiler() is None:
        missing("no C compiler (cc/gcc) to build bridge/kernels")
    return build.build()


def _session(model, library) -> ort.InferenceSession:
    opts = session_options(1)
    opts.register_custom_ops_library(str(library))
    return ort.InferenceSession(model.SerializeToString(), opts, providers=CPU)


def _rows_model(k: int, n: int, unsigned_weights: bool, seed: int = 0):
    """x [rows, k] and seq [rows, t, k] through one float weight, passed through to_int8_rows."""
    w = np.random.default_rng(seed).normal(size=(k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="a"),
         helper.make_node("MatMul", ["seq", "w"], ["y_seq"], name="b")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k]),
         helper.make_tensor_value_info("seq", TensorProto.FLOAT, ["rows", "t", k])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "y_seq")],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return P.to_int8_rows(model, unsigned_weights=unsigned_weights), w


def test_library_builds_once_into_its_cache(library, tmp_path):
    first = build.build(tmp_path)
    assert first.is_file() and build.build(tmp_path) == first  # the same source version is not rebuilt
    assert [p.name for p in first.parent.iterdir()] == [build.LIBRARY_NAME]  # no temporary left behind


def _variant(library, monkeypatch, switch: str) -> str:
    """Set the switch; the kernel the library then runs (asserted to be the one expected)."""
    monkeypatch.setenv(rows_matmul.ENV_SWITCH, switch)
    name = rows_matmul.kernel_name(library)
    vnni = switch == "on" and "avx512_vnni" in machine()["isa"]
    assert name == rows_matmul.KERNEL_PREFIX + ("avx512-vnni" if vnni else "avx2")
    return name


@pytest.mark.parametrize("switch", VARIANTS)
@pytest.mark.parametrize("unsigned_weights", [False, True], ids=["s8", "u8"])
@pytest.mark.parametrize("k,n", [(64, 48), (70, 100), (3, 7), (256, 32)])
def test_operator_is_the_exact_rows_arithmetic(library, monkeypatch, switch, unsigned_weights, k, n):
    _variant(library, monkeypatch, switch)
    weight = "uint8" if unsigned_weights else "int8"
    model, w = _rows_model(k, n, unsigned_weights)
    unfused = _rows_model(k, n, unsigned_weights)[0]
    assert rows_matmul.relabel(model) == 2 and rows_matmul.relabel(unfused, fuse=False) == 2
    # Fused: the quantization ops and the flatten / unflatten Reshapes of the 3-D input are gone.
    assert [nd.op_type for nd in model.graph.node] == [rows_matmul.QUANT_OPS[weight]] * 2
    assert {nd.op_type for nd in unfused.graph.node if nd.domain == rows_matmul.DOMAIN} == {rows_matmul.OPS[weight]}
    session, separate = _session(model, library), _session(unfused, library)
    plain = ort.InferenceSession(_rows_model(k, n, unsigned_weights)[0].SerializeToString(), providers=CPU)
    rng = np.random.default_rng(1)
    for rows in (1, 2, 3, 5, 9):  # the VNNI variant takes rows 4 at a time
        # Row scales 1..1e3 and an all-zero row; activations quantize to the full -127..127.
        x = rng.normal(size=(rows, k)).astype(np.float32) * np.logspace(0, 3, rows, dtype=np.float32)[:, None]
        if rows > 1:
            x[-1] = 0.0
        seq = rng.normal(size=(rows, 4, k)).astype(np.float32)
        feeds = {"x": x, "seq": seq}
        y, y_seq = session.run(None, feeds)
        assert y.shape == (rows, n) and y_seq.shape == (rows, 4, n)
        for got, xin in ((y, x), (y_seq, seq)):
            np.testing.assert_allclose(got, rows_reference(xin.astype(np.float64), w), rtol=1e-5, atol=1e-4)
        # The fused quantization rounds as ORT's QuantizeLinear: the same bits as the graph ops.
        assert all(np.array_equal(a, b) for a, b in zip((y, y_seq), separate.run(None, feeds)))
        if unsigned_weights or P.has_int8_dot(machine()["isa"]):  # where ORT's own kernel is exact too
            assert all(np.array_equal(a, b) for a, b in zip((y, y_seq), plain.run(None, feeds)))
        if rows > 1:
            assert not y[-1].any()
            alone = session.run(["y"], {"x": x[:1], "seq": seq})[0]
            assert np.array_equal(alone[0], y[0])  # a row's result does not depend on the batch


def _session_threads(model, library, threads: int) -> ort.InferenceSession:
    opts = session_options(threads, spin=threads > 1)
    opts.register_custom_ops_library(str(library))
    return ort.InferenceSession(model.SerializeToString(), opts, providers=CPU)


@pytest.mark.parametrize("switch", VARIANTS)
def test_a_session_on_two_threads_splits_the_columns_and_computes_the_same(library, monkeypatch, switch):
    """On a session with 2 intra-op threads a matmul's 32-column blocks are shared out over
    them (ORT's KernelContext_ParallelFor): the same bits as on one thread, every column written."""
    _variant(library, monkeypatch, switch)
    k, n = 96, 1000  # 32 blocks (8 parts), the last one partial
    model, w = _rows_model(k, n, unsigned_weights=False)
    rows_matmul.relabel(model)
    one, two = _session_threads(model, library, 1), _session_threads(model, library, 2)
    rng = np.random.default_rng(5)
    for rows in (1, 3, 6):
        feeds = {"x": rng.normal(size=(rows, k)).astype(np.float32), "seq": rng.normal(size=(rows, 2, k)).astype(np.float32)}
        got = two.run(None, feeds)
        assert all(np.array_equal(a, b) for a, b in zip(got, one.run(None, feeds)))
        np.testing.assert_allclose(got[0], rows_reference(feeds["x"].astype(np.float64), w), rtol=1e-5, atol=1e-4)


def test_quantization_ties_round_to_even_as_ort_does(library):
    """Activations on exact halves of a quantization step (x / s = m + 0.5) and on the clamp."""
    k = 16
    model, _ = _rows_model(k, 8, unsigned_weights=True)
    rows_matmul.relabel(model)
    session = _session(model, library)
    plain = ort.InferenceSession(_rows_model(k, 8, unsigned_weights=True)[0].SerializeToString(), providers=CPU)
    halves = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.5, -3.5, 64.5, -64.5, 0.0, 1e-8, -127.0]],
                      np.float32)
    for x in (halves, halves * 3.0, halves[:, ::-1].copy()):
        feeds = {"x": x, "seq": x[:, None, :]}
        assert all(np.array_equal(a, b) for a, b in zip(session.run(None, feeds), plain.run(None, feeds)))


def test_fusion_takes_only_the_rows_quantization(library):
    """Another scale constant is not what the fused operator computes: the MatMuls stay
    unfused (and exact); an activation used elsewhere keeps its ops for that use."""
    model, _ = _rows_model(64, 48, unsigned_weights=True)
    eps = next(i for i in model.graph.initializer if i.name == "int8_rows/eps")
    eps.CopyFrom(numpy_helper.from_array(np.array(1e-20, np.float32), "int8_rows/eps"))
    assert rows_matmul.relabel(model) == 2
    assert {nd.op_type for nd in model.graph.node if nd.domain == rows_matmul.DOMAIN} == {rows_matmul.OPS["uint8"]}
    assert any(nd.op_type == "QuantizeLinear" for nd in model.graph.node)

    model, _ = _rows_model(64, 48, unsigned_weights=True)
    scale = next(nd.output[0] for nd in model.graph.node if nd.op_type == "Mul")
    model.graph.output.append(helper.make_tensor_value_info(scale, TensorProto.FLOAT, None))
    assert rows_matmul.relabel(model) == 2
    assert [nd.op_type for nd in model.graph.node].count(rows_matmul.QUANT_OPS["uint8"]) == 2
    x = np.random.default_rng(0).normal(size=(2, 64)).astype(np.float32)
    out = _session(model, library).run(None, {"x": x, "seq": x[:, None, :]})
    np.testing.assert_array_equal(out[2], np.abs(x).max(axis=1) * np.float32(1 / 127))  # still computed


def test_relabel_takes_only_what_the_kernel_computes(library):
    model, _ = _rows_model(64, 48, unsigned_weights=True)
    mm = [nd for nd in model.graph.node if nd.op_type == "MatMulIntegerToFloat"]
    model.graph.initializer.append(numpy_helper.from_array(np.array(127, np.uint8), "zp127"))
    mm[0].input[5] = "zp127"  # a weight zero point other than 128
    mm[1].input.append("bias_unused")  # a bias input: not the rows schemes' form
    assert rows_matmul.relabel(model) == 0
    assert all(nd.domain != rows_matmul.DOMAIN for nd in model.graph.node)
    assert not any(o.domain == rows_matmul.DOMAIN for o in model.opset_import)


def test_a_weight_that_is_not_constant_is_refused_with_a_clear_error(library):
    node = helper.make_node("RowsMatMulS8", ["xq", "w", "a_scale", "b_scale", "zp"], ["y"], domain=rows_matmul.DOMAIN)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, 8]),
         helper.make_tensor_value_info("w", TensorProto.INT8, [8, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones(1, np.float32), "a_scale"), numpy_helper.from_array(np.ones(4, np.float32), "b_scale"),
         numpy_helper.from_array(np.array(128, np.uint8), "zp")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(rows_matmul.DOMAIN, 1)])
    with pytest.raises(Exception, match="must be a constant initializer"):
        _session(model, library)


def test_the_switch_decides_where_the_kernel_runs(library, monkeypatch, caplog):
    amx = ["avx2", "fma", "avx512_vnni", "amx_int8"]
    vnni, avx2 = ["avx2", "fma", "avx512_vnni"], ["avx2", "fma"]
    expect = {"auto": (False, True, True), "on": (True, True, True), "avx2": (True, True, True),
              "off": (False, False, False)}
    for value, on_cpus in expect.items():
        monkeypatch.setenv(rows_matmul.ENV_SWITCH, value)
        assert tuple(rows_matmul.usable(isa) for isa in (amx, vnni, avx2)) == on_cpus, value
        assert not rows_matmul.usable([])
    monkeypatch.setenv(rows_matmul.ENV_SWITCH, "fast")
    with caplog.at_level(logging.WARNING, logger="bridge.kernels.rows_matmul"):
        assert rows_matmul.usable(avx2)  # read as auto, said once
    assert any("MRT_BRIDGE_NATIVE_KERNELS='fast'" in r.getMessage() for r in caplog.records)
    for switch in VARIANTS:
        kernel = _variant(library, monkeypatch, switch)
        assert native_int8_kernel(CPU) == kernel
    assert native_int8_kernel(["CUDAExecutionProvider", *CPU]) is None
    monkeypatch.setenv(rows_matmul.ENV_SWITCH, "off")
    assert native_int8_kernel(CPU) is None


@pytest.fixture(scope="module")
def int8_packages(tiny_checkpoint, tmp_path_factory) -> dict:
    return {scheme: export_package(tiny_checkpoint, "tiny", tmp_path_factory.mktemp(scheme) / "pkg",
                                   precision="int8", int8_scheme=scheme, progress=False)
            for scheme in ("rows", "rows_u8", "blocks")}


@pytest.mark.parametrize("switch", VARIANTS)
@pytest.mark.parametrize("num_cfgs", [0, 2], ids=["unguided", "guided"])
def test_engine_on_the_kernel_gives_orts_logits(library, int8_packages, monkeypatch, caplog, switch, num_cfgs):
    """Teacher-forced logits of the tiny int8 model: rows_u8 on the kernel vs on ORT's exact
    u8 x u8 kernel; rows (int8 weights; ORT's u8 x s8 kernel saturates on AVX2) on the kernel
    vs rows_u8: the two schemes store the same quantized weights."""
    cond = conditioning(FRAMES)
    teacher = np.random.default_rng(3).integers(0, 1024, (FRAMES, 12))
    monkeypatch.setenv(rows_matmul.ENV_SWITCH, "off")
    ort_u8 = teacher_forced_logits(int8_packages["rows_u8"], cond, teacher, num_cfgs)
    kernel = _variant(library, monkeypatch, switch)
    with caplog.at_level(logging.INFO, logger="bridge.runtime"):
        native_u8 = teacher_forced_logits(int8_packages["rows_u8"], cond, teacher, num_cfgs)
        native_s8 = teacher_forced_logits(int8_packages["rows"], cond, teacher, num_cfgs)
    relabelled = [r.getMessage() for r in caplog.records if f"on the {kernel} kernels" in r.getMessage()]
    assert any(m.startswith("temporal.onnx") for m in relabelled) and any(m.startswith("depth.onnx") for m in relabelled)
    # The same integer sums, scaled in ORT's order: the same logits bit for bit.
    assert np.array_equal(native_u8, ort_u8)
    assert np.array_equal(native_s8, native_u8)


def test_which_kernel_runs_a_package(int8_packages, tiny_package, monkeypatch):
    monkeypatch.setenv(rows_matmul.ENV_SWITCH, "on")
    from bridge.package import load_package

    native = native_int8_kernel(CPU) or "onnxruntime"
    assert native.startswith(rows_matmul.KERNEL_PREFIX) == ("avx2" in machine()["isa"] and bool(build.compiler()))
    assert int8_matmul_kernel(load_package(int8_packages["rows"]), CPU) == native
    assert int8_matmul_kernel(load_package(int8_packages["blocks"]), CPU) == "onnxruntime"  # MatMulNBits
    assert int8_matmul_kernel(load_package(tiny_package), CPU) is None  # fp32
    monkeypatch.setenv(rows_matmul.ENV_SWITCH, "off")
    assert int8_matmul_kernel(load_package(int8_packages["rows"]), CPU) == "onnxruntime"


def test_relabelled_graphs_are_cached_per_source_file_and_stale_copies_dropped(library, tmp_path, monkeypatch):
    import onnx

    model, _ = _rows_model(64, 48, unsigned_weights=False)
    source = tmp_path / "g.onnx"
    onnx.save(model, str(source))
    target, count = rows_matmul.relabelled_graph(source)
    assert count == 2 and target.name == "g.onnx" and target.parent != tmp_path
    assert {n.op_type for n in onnx.load(str(target)).graph.node} == {rows_matmul.QUANT_OPS["int8"]}

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr(onnx, "load", no_parse)
    assert rows_matmul.relabelled_graph(source) == (target, 2)  # from the cache, not parsed again
    monkeypatch.undo()
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    other_target, _ = rows_matmul.relabelled_graph(other)
    other.unlink()  # a package removed: its copy is of no use any more
    plain = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(plain, str(source))  # the same path rewritten: a new entry, nothing to relabel
    assert rows_matmul.relabelled_graph(source) is None
    # Making the new entry dropped the stale copies: the old version's and the removed file's.
    assert not target.parent.exists() and not other_target.parent.exists()
    monkeypatch.setattr(onnx, "load", no_parse)
    assert rows_matmul.relabelled_graph(source) is None  # remembered, not parsed again


def test_a_relabelled_graph_that_fails_to_load_falls_back_to_orts_kernels(library, tmp_path, monkeypatch, caplog):
    import onnx

    from bridge.runtime import make_session

    model, _ = _rows_model(64, 48, unsigned_weights=True)
    source = tmp_path / "g.onnx"
    onnx.save(model, str(source))
    monkeypatch.setenv(rows_matmul.ENV_SWITCH, "on")
    target, _ = rows_matmul.relabelled_graph(source)
    target.write_bytes(b"not a model")  # a damaged cache entry
    with caplog.at_level(logging.WARNING, logger="bridge.runtime"):
        session = make_session(source, CPU, threads=1)
    assert any("kernel is not used" in r.getMessage() and "g.onnx" in r.getMessage() for r in caplog.records)
    x = np.random.default_rng(0).normal(size=(2, 64)).astype(np.float32)
    assert session.run(["y"], {"x": x, "seq": x[:, None]})[0].shape == (2, 48)
    assert not target.exists()  # dropped: the next start makes it again
    make_session(source, CPU, threads=1)
    assert onnx.load(str(target)).graph.node  # repaired


def _elu_model(zero_point=37, scale=0.0123, min_const=0.0, sub_const=1.0, zero_type=np.uint8,
               extra_reader=False):
    """x -> spectrostream_ops.elu's chain -> QuantizeLinear(scale, zero point) -> y."""
    def const(name, value, dtype=np.float32):
        return numpy_helper.from_array(np.array(value, dtype), name)

    nodes = [helper.make_node("Min", ["x", "c0"], ["m"]), helper.make_node("Exp", ["m"], ["e"]),
             helper.make_node("Sub", ["e", "c1"], ["s"]), helper.make_node("Max", ["x", "s"], ["elu"]),
             helper.make_node("QuantizeLinear", ["elu", "scale", "zp"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.UINT8 if zero_type == np.uint8 else TensorProto.INT8, None)]
    if extra_reader:
        nodes.append(helper.make_node("Neg", ["elu"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "elu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])], outputs,
                              [const("c0", min_const), const("c1", sub_const), const("scale", scale),
                               const("zp", zero_point, zero_type)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("zero_point,scale", [(37, 0.0123), (0, 0.05), (255, 0.002)])
def test_elu_quantize_is_orts_chain(library, zero_point, scale):
    """The fused ELU + QuantizeLinear against ORT's five ops, over 10^6 + 1 values (one past a
    whole block): from far below exp's range to past the uint8 clamp on both sides."""
    model = _elu_model(zero_point, scale)
    plain = ort.InferenceSession(model.SerializeToString(), providers=CPU)
    assert fuse_elu_quantize(model) == 1
    assert [(n.domain, n.op_type) for n in model.graph.node] == [(rows_matmul.DOMAIN, ELU_OP)]
    fused = _session(model, library)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=999_990) * 3, [-200.0, -87.5, -87.0, -1e-30, 0.0, 1e-30, 1e4, -1e4, 0.5,
                                                        scale * 0.5, -scale * 0.5]]).astype(np.float32)
    for n in (x.size, 7, 33):  # and short tensors: only the tail path, one block + a tail
        got, want = fused.run(None, {"x": x[-n:]})[0], plain.run(None, {"x": x[-n:]})[0]
        diff = np.abs(got.astype(int) - want.astype(int))
        # exp's last bit can move a value across a rounding tie: one step, rarely (measured: none)
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * n


@pytest.mark.parametrize("change", [dict(min_const=0.5), dict(sub_const=2.0), dict(zero_type=np.int8),
                                    dict(extra_reader=True)],
                         ids=["another-min", "another-sub", "int8-output", "elu-read-elsewhere"])
def test_elu_fusion_takes_only_the_elu_chain(change):
    model = _elu_model(**change)
    before = [n.op_type for n in model.graph.node]
    assert fuse_elu_quantize(model) == 0
    assert [n.op_type for n in model.graph.node] == before


def test_int8_codec_on_the_fused_elus_sounds_as_on_orts(library):
    """The tiny int8 codec decoder, relabelled as a package's is, against the same graph on
    ORT's ops: 24 frames of codes through the streaming state."""
    from bridge import io_names
    from bridge.runtime import StatefulSession
    from onnx_export.codec_int8 import audio_snr_db, build_int8_codec_decoder, codes_sequence
    from onnx_export.spectrostream import codec_config, synth_spectrostream_tensors

    cfg = codec_config("tiny")
    int8 = build_int8_codec_decoder(synth_spectrostream_tensors(cfg, np.random.default_rng(0)), cfg, amx=False)
    plain = StatefulSession(ort.InferenceSession(int8.SerializeToString(), session_options(1), providers=CPU))
    chains = sum(n.op_type == "Exp" for n in int8.graph.node)
    fused_count = fuse_elu_quantize(int8)
    # every ELU that an int8 conv reads (not the input layer's, nor the fp32 output conv's)
    assert 0 < fused_count <= chains and not any(n.op_type == "Exp" for n in int8.graph.node if
                                                 n.name.split("/")[1].startswith("decoder_"))
    fused = StatefulSession(_session(int8, library))
    codes = codes_sequence(np.random.default_rng(1), 24, cfg.rvq_truncation_level, held=True)
    audio = [np.concatenate([s.run({io_names.CODES: c[None]})[io_names.AUDIO][0] for c in codes])
             for s in (plain, fused)]
    assert np.abs(audio[0]).max() > 0
    assert audio_snr_db(audio[0], audio[1]) >= 40.0  # int8 against fp32 is ~29 dB (test_precision)


def _conv_model(n=2, c=256, h=10, w=120, o=8, kh=7, kw=3, seed=0, weight_input=False, bias=True, **attrs):
    """x [n, c, h, w] through one float Conv with ``attrs``."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.normal(size=(o, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(np.float32), "W")]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(size=o).astype(np.float32), "B"))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])]
    if weight_input:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [o, c, kh, kw]))
        inits = inits[1:]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "W", "B"] if bias else ["x", "W"], ["y"], name="conv", **attrs)],
                              "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [
    dict(pads=[0, 1, 0, 1]),  # the codec's output conv
    dict(n=1, c=5, h=6, w=13, kh=3, kw=5, pads=[1, 2, 2, 0]),  # a partial last tile, every side padded
    dict(n=3, c=4, h=3, w=4, kh=2, kw=6, pads=[0, 3, 1, 2]),  # taps wider than the input
    dict(n=1, c=3, h=2, w=30, kh=3, kw=1, pads=[2, 0, 2, 0]),  # output rows that see one input row
    dict(n=1, c=7, h=5, w=25, kh=1, kw=1),  # no pads
    dict(n=1, c=9, h=4, w=20, o=16, kh=2, kw=3, pads=[1, 1, 0, 1]),  # two groups of 8 (the pass takes 8 only)
], ids=["codec-output", "edges", "wide-taps", "tall-pads", "1x1", "16-outputs"])
def test_narrow_conv_is_orts_conv(library, monkeypatch, threads, shape):
    """NarrowConv against ORT's Conv on the same graph: the same sums in another order, so equal
    to float rounding (1e-5 of the output's scale; fp32 sums of up to 5,376 products)."""
    from bridge.kernels import narrow_conv
    from bridge.kernels.narrow_conv import OP, move_narrow_convs

    monkeypatch.setattr(narrow_conv, "OUTPUTS", shape.get("o", 8))
    model = _conv_model(**shape)
    x = np.random.default_rng(1).normal(size=[d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim])
    ref = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=CPU).run(None, {"x": x.astype(np.float32)})[0]
    assert move_narrow_convs(model) == 1 and model.graph.node[0].op_type == OP
    got = _session_threads(model, library, threads).run(None, {"x": x.astype(np.float32)})[0]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("change", [
    dict(o=16), dict(o=4), dict(c=16, group=2), dict(strides=[1, 2]), dict(dilations=[2, 1]),
    dict(auto_pad="SAME_UPPER"), dict(bias=False), dict(weight_input=True), dict(c=2, kh=1, kw=65, w=80),
], ids=["16-outputs", "4-outputs", "grouped", "strided", "dilated", "auto-pad", "no-bias", "weight-not-constant",
        "65-wide"])
def test_narrow_conv_move_takes_only_what_it_computes(change):
    from bridge.kernels.narrow_conv import move_narrow_convs

    model = _conv_model(**change)
    assert move_narrow_convs(model) == 0
    assert [(n.domain, n.op_type) for n in model.graph.node] == [("", "Conv")]


def test_narrow_conv_with_a_weight_that_is_not_constant_is_refused_with_a_clear_error(library):
    from bridge.kernels.narrow_conv import OP

    graph = helper.make_graph(
        [helper.make_node(OP, ["x", "W", "B", "pads"], ["y"], domain=rows_matmul.DOMAIN)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3]),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [8, 2, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.zeros(8, np.float32), "B"), numpy_helper.from_array(np.zeros(4, np.int64), "pads")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(rows_matmul.DOMAIN, 1)])
    with pytest.raises(Exception, match="must be constant initializers"):
        _session(model, library)


def test_codec_on_the_narrow_conv_sounds_as_on_orts(library):
    """The tiny fp32 codec decoder with its output conv on NarrowConv against ORT's Conv: 24
    frames of codes through the streaming state."""
    from bridge import io_names
    from bridge.kernels.narrow_conv import move_narrow_convs
    from bridge.runtime import StatefulSession
    from onnx_export.codec_int8 import audio_snr_db, codes_sequence
    from onnx_export.spectrostream import build_codec_decoder, codec_config, synth_spectrostream_tensors

    cfg = codec_config("tiny")
    model = build_codec_decoder(synth_spectrostream_tensors(cfg, np.random.default_rng(0)), cfg)
    plain = StatefulSession(ort.InferenceSession(model.SerializeToString(), session_options(1), providers=CPU))
    assert move_narrow_convs(model) >= 1  # the tiny codec is narrow throughout
    assert any(n.op_type == "NarrowConv" for n in model.graph.node if n.name.startswith("codec_decoder/output_layer/"))
    moved = StatefulSession(_session(model, library))
    codes = codes_sequence(np.random.default_rng(1), 24, cfg.rvq_truncation_level, held=True)
    audio = [np.concatenate([s.run({io_names.CODES: c[None]})[io_names.AUDIO][0] for c in codes])
             for s in (plain, moved)]
    assert np.abs(audio[0]).max() > 0
    assert audio_snr_db(audio[0], audio[1]) >= 90.0  # float rounding only (the int8 codec is ~29 dB)


def test_codec_bench_times_the_decoder_as_the_engine_runs_it(library):
    """benchmarks/codec_bench.py also times the int8 decoder on the kernels (fused ELUs, then
    the narrow output conv too), where the CPU has FMA."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "codec_bench.py"), "--size", "tiny", "--threads", "1",
                          "--frames", "3", "--warmup", "1"], capture_output=True, text=True, check=True, cwd=root)
    graphs = json.loads(out.stdout.strip().splitlines()[-1])["graphs"]
    want = {"decoder_fp32@1t", "decoder_int8@1t", "encoder_fp32@1t"}
    if "fma" in machine()["isa"]:
        want |= {"decoder_int8_elu@1t", "decoder_int8_native@1t"}
    assert set(graphs) == want and all(g["cpu_p50_ms"] > 0 for g in graphs.values())
