"""v1 LM graphs, package export and chunk engine on the tiny synthetic checkpoint (real ORT sessions)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from bridge.package import load_package
from bridge.v1 import io_names as v1io
from bridge.v1.engine import V1Engine, V1State, crossfade_ramp, encoder_tokens, is_v1_package, llm_to_rvq
from onnx_export.v1 import config as v1
from onnx_export.v1 import graphs
from onnx_export.v1.checkpoint import write_checkpoint_dir
from onnx_export.v1.export import export_v1_package, is_v1_checkpoint
from onnx_export.v1.synth import synth_params

from .v1_reference import Reference
from .v1_util import codec_tensors, make_v1_package

TINY = v1.get_size("tiny")


def _session(model) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def params() -> dict[str, np.ndarray]:
    return dict(synth_params("tiny", 0))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return make_v1_package(tmp_path_factory.mktemp("v1"))


def _prompt(rng: np.random.Generator) -> np.ndarray:
    context = rng.integers(0, 1024, (v1.CONTEXT_FRAMES, v1.DECODER_LEVELS)).astype(np.int32)
    context[:100] = -1  # a partly filled context: MASKed frames
    return encoder_tokens(context, rng.integers(0, 1024, 12))


@pytest.mark.parametrize("rows,guidance", [(2, 4.0), (1, 0.0)])
def test_graphs_match_full_sequence_reference(params, rows, guidance):
    """Stepwise graphs (KV state, per-frame depth) == upstream's full-sequence math, greedy, 3 frames."""
    enc = _session(graphs.build_encoder(TINY, params))
    temporal = _session(graphs.build_temporal(TINY, params))
    depth = _session(graphs.build_depth(TINY, params, emit_logits=True))
    tokens = _prompt(np.random.default_rng(3))[:rows]
    cross = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {v1io.ENCODER_TOKENS: tokens})))
    state = {i.name: np.zeros([rows if d == "rows" else d for d in i.shape],
                              np.int64 if i.type == "tensor(int64)" else np.float32)
             for i in temporal.get_inputs() if i.name.startswith("past.")}
    prev = np.zeros((rows, 16), np.int64)
    got_tokens, got_logits = [], []
    for _ in range(3):
        out = dict(zip([o.name for o in temporal.get_outputs()],
                       temporal.run(None, {"prev_tokens": prev, **cross, **state})))
        state = {"past." + k[len("present."):]: v for k, v in out.items() if k.startswith("present.")}
        toks, logits = depth.run(None, {
            "temporal_out": out["temporal_out"], "guidance": np.array([guidance], np.float32),
            "temperature": np.zeros(1, np.float32), "top_k": np.array([40]),
            "gumbel": np.zeros((1, 16, 40), np.float32)})
        got_tokens.append(toks[0])
        got_logits.append(logits[0])
        prev = np.repeat(toks, rows, axis=0)
    want_tokens, want_logits = Reference(TINY, params).greedy_chunk(tokens, guidance, frames=3)
    np.testing.assert_array_equal(np.stack(got_tokens), want_tokens)
    np.testing.assert_allclose(np.stack(got_logits), want_logits, atol=2e-4 * np.abs(want_logits).max())


def test_sampling_topk_and_temperature(params):
    """Top-k keeps the k best guided logits; Gumbel-max picks argmax(logit + T * noise) among them."""
    depth = _session(graphs.build_depth(TINY, params, emit_logits=True))
    t_out = np.random.default_rng(0).standard_normal((1, TINY.embed_dim)).astype(np.float32)
    rng = np.random.default_rng(1)
    for k, temperature in ((1, 5.0), (5, 2.0), (0, 1.0)):
        width = k if k > 0 else v1.NUM_EMBEDDINGS
        noise = rng.gumbel(size=(1, 16, width)).astype(np.float32)
        toks, logits = depth.run(None, {"temporal_out": t_out, "guidance": np.zeros(1, np.float32),
                                        "temperature": np.array([temperature], np.float32),
                                        "top_k": np.array([k]), "gumbel": noise})
        level0 = logits[0, 0]
        order = np.argsort(-level0, kind="stable")[:width]
        want = order[np.argmax(level0[order] + temperature * noise[0, 0])]
        assert toks[0, 0] == want
        if k == 1:  # top-1 is greedy whatever the noise
            assert toks[0, 0] == np.argmax(level0)


def test_bias_tables_follow_t5_buckets():
    """One-directional buckets: exact below max_distance/2 ... as flaxformer (depth: 16 buckets, distance 16)."""
    n = np.arange(16)
    buckets = graphs.relative_position_bucket(-n, False, 16, 16)
    assert list(buckets[:8]) == list(range(8)) and buckets[-1] == 15 and np.all(np.diff(buckets) >= 0)
    rel = np.arange(2 * 16, dtype=np.float32).reshape(2, 16)
    table = graphs.causal_bias_table(rel, 16, 16)  # [query, head, key]
    assert table[5, 1, 3] == rel[1, buckets[2]] and table[0, 0, 0] == rel[0, 0]


def test_export_writes_a_v1_package(package, tmp_path):
    pkg = load_package(package)
    manifest = pkg.manifest
    assert manifest["family"] == "v1" and manifest["model"]["size"] == "tiny" and manifest["synthetic"]
    assert set(manifest["graphs"]) == {"encoder", "temporal", "depth", "codec_decoder"}
    assert manifest["codec"]["codes_per_frame"] == 16
    assert manifest["graphs"]["depth"]["inputs"]["gumbel"]["shape"] == [1, 16, "noise"]
    assert is_v1_package(package) and is_v1_checkpoint(package.parent / "ckpt")
    assert not is_v1_checkpoint(package)
    # Exporting the same checkpoint again gives the same graph bytes.
    again = export_v1_package(package.parent / "ckpt", tmp_path / "again", codec=codec_tensors(), progress=False)
    for name, entry in manifest["graphs"].items():
        assert json.loads((again / "manifest.json").read_text())["graphs"][name]["sha256"] == entry["sha256"]


def test_export_refuses_a_wrong_size(package, tmp_path):
    with pytest.raises(ValueError, match="not a v1 base checkpoint"):
        export_v1_package(package.parent / "ckpt", tmp_path / "x", size="base", progress=False)


def test_engine_greedy_chunk_matches_reference(package, params):
    """Chunk 0 from an empty context, greedy with guidance: the first frames equal the numpy reference."""
    engine = V1Engine(package, provider="cpu")
    style = np.arange(12) * 7
    chunk = engine.generate_chunk(style, seed=0, guidance_weight=3.0, temperature=0.0)
    context = np.full((v1.CONTEXT_FRAMES, 16), -1, np.int32)
    want, _ = Reference(TINY, params).greedy_chunk(encoder_tokens(context, style), 3.0, frames=4)
    np.testing.assert_array_equal(chunk.lm_tokens[:4], want)
    np.testing.assert_array_equal(chunk.tokens, llm_to_rvq(chunk.lm_tokens))
    assert chunk.tokens.dtype == np.int32 and chunk.tokens.shape == (50, 16)


def test_engine_state_and_crossfade_follow_upstream(package):
    engine = V1Engine(package, provider="cpu")
    first = engine.generate_chunk(None, seed=5)
    state = engine.state
    assert state.chunk_index == 1
    np.testing.assert_array_equal(state.context_tokens[-50:], first.tokens)
    assert (state.context_tokens[:-50] == -1).all()
    # Chunk 0 decodes a zero frame before its 50 frames and fades in from silence.
    with_xfade = engine.decode(np.concatenate([np.zeros((1, 16), np.int32), first.tokens]))
    ramp = crossfade_ramp()
    np.testing.assert_allclose(first.audio[:1920], with_xfade[:1920] * ramp, atol=1e-6)
    np.testing.assert_allclose(first.audio[1920:], with_xfade[1920:-1920], atol=1e-6)
    np.testing.assert_allclose(state.crossfade_samples, with_xfade[-1920:], atol=1e-6)
    # Chunk 1: its crossfade frame is the last context frame, faded against chunk 0's tail.
    tail = state.crossfade_samples.copy()
    second = engine.generate_chunk(None, seed=5)
    with_xfade = engine.decode(np.concatenate([first.tokens[-1:], second.tokens]))
    np.testing.assert_allclose(second.audio[:1920], with_xfade[:1920] * ramp + tail * ramp[::-1], atol=1e-6)
    np.testing.assert_array_equal(engine.state.context_tokens[-100:], np.concatenate([first.tokens, second.tokens]))
    assert second.audio.shape == (96000, 2) and second.audio.dtype == np.float32


def test_engine_seeds_are_reproducible(package):
    a, b = V1Engine(package, provider="cpu"), V1Engine(package, provider="cpu")
    runs = [[e.generate_chunk(None, seed=s).tokens for _ in range(2)] for e, s in ((a, 1), (b, 1))]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[0][1])  # seed + chunk_index: a new stream per chunk
    b.reset()
    assert not np.array_equal(b.generate_chunk(None, seed=2).tokens, runs[0][0])


def test_engine_eos_ends_the_chunk(tmp_path):
    """Token 1 (EOS) sampled at step 0: upstream pads the rest of the chunk with 0."""
    params = dict(synth_params("tiny", 0))
    params[graphs.LOGITS_KERNEL][:, v1.MASK_ID] = 0.0
    params[graphs.DECODER_NORM][:] = 1.0
    params[graphs.LOGITS_KERNEL][:, v1.MASK_ID] += 1e3 * np.sign(params[graphs.LOGITS_KERNEL].sum(1))
    ckpt = write_checkpoint_dir(params, tmp_path / "ckpt")
    pkg = export_v1_package(ckpt, tmp_path / "pkg", progress=False)
    engine = V1Engine(pkg, provider="cpu")
    chunk = engine.generate_chunk(None, seed=0, temperature=0.0)
    assert chunk.audio is None
    flat = chunk.lm_tokens.reshape(-1)
    first = int(np.flatnonzero(flat == v1.MASK_ID)[0])
    assert (flat[first + 1:] == 0).all() and (chunk.tokens.reshape(-1)[first:] == 0).all()


def test_state_update_checks_like_upstream():
    state = V1State()
    with pytest.raises(ValueError, match="RVQ codes"):
        state.update(np.full((50, 16), 1024), np.zeros((1920, 2)))
    with pytest.raises(ValueError, match="expected"):
        state.update(np.zeros((50, 12)), np.zeros((1920, 2)))
    with pytest.raises(ValueError, match="style tokens"):
        encoder_tokens(state.context_tokens, np.array([1, 2, 3]))
    toks = encoder_tokens(state.context_tokens, None)
    assert toks.shape == (2, 1006) and (toks == v1.MASK_ID).all()


def test_every_checkpoint_parameter_reaches_a_graph(params):
    """Nothing of the checkpoint is left out: every t5x parameter is (part of) some graph initializer."""
    used = set()
    for model in (graphs.build_encoder(TINY, params), graphs.build_temporal(TINY, params),
                  graphs.build_depth(TINY, params)):
        for init in model.graph.initializer:
            used.update(part.split("[")[0] for part in init.name.split("|"))
    assert set(params) <= used
