"""SYNTHETIC MusicCoCa TFLite models: random weights, upstream's I/O signatures.

Not MusicCoCa: small random networks with exactly the inputs and outputs
upstream's ``magenta_rt/musiccoca.py`` feeds and reads, so the whole style
path (SentencePiece ids -> text encoder -> 768-d -> RVQ tokens; 16 kHz audio
-> preprocessor -> music encoder -> 768-d) runs on machines without the real
weights, and the TFLite -> ONNX converter is tested on the same files.

Signatures (batch 1):

    text_encoder:        ids int32 [1,128], paddings float32 [1,128] -> [1,768]
    audio_preprocessor:  audio float32 [1,160000] (10 s @ 16 kHz)   -> [1,1000,64]
    music_encoder:       features float32 [1,1000,64]               -> [1,768]
    pretrained_vector_quantizer: embedding float32 [1,768]          -> int32 [1,12]
    mapper:              embedding float32 [1,768], noise float32 [1,768] -> [1,768]

The quantizer is a real residual vector quantizer (12 levels x 1024 codes);
its codebooks are built in-graph from low-rank factors (``A_k @ B_k``) to keep
the file small; :func:`synthetic_codebooks` gives the same codebooks in numpy.
"""

from __future__ import annotations

import numpy as np

from onnx_export.tflite_writer import TfliteBuilder

MAX_TEXT_LENGTH = 128
CLIP_SAMPLES = 160_000
EMBED_DIM = 768
RVQ_DEPTH = 12
CODEBOOK_SIZE = 1024
_FRAME = 160
_FEATURES = 64
_TEXT_WIDTH = 64
_MUSIC_WIDTH = 256
_RANK = 16
_MAPPER_WIDTH = 128

_F32 = np.float32
_NONE = {"FusedActivationFunction": 0}


def _l2_normalize(b: TfliteBuilder, x: int, shape: list[int], out_name: str) -> int:
    sq = b.op("MUL", [x, x], shape, _F32, ("MulOptions", _NONE))
    ss = b.op("SUM", [sq, b.const("norm_axis", np.array([-1], np.int32))], shape[:-1] + [1], _F32,
              ("ReducerOptions", {"KeepDims": True}))
    ss = b.op("ADD", [ss, b.const("norm_eps", np.array(1e-12, _F32))], shape[:-1] + [1], _F32,
              ("AddOptions", _NONE))
    inv = b.op("RSQRT", [ss], shape[:-1] + [1], _F32)
    return b.op("MUL", [x, inv], shape, _F32, ("MulOptions", _NONE), out_name=out_name)


def _fc(b: TfliteBuilder, x: int, w: np.ndarray, bias: np.ndarray | None, out_shape: list[int],
        name: str, act: int = 0, keep_num_dims: bool = False) -> int:
    ins = [x, b.const(f"{name}/kernel", w.astype(_F32))]
    ins.append(b.const(f"{name}/bias", bias.astype(_F32)) if bias is not None else -1)
    return b.op("FULLY_CONNECTED", ins, out_shape, _F32,
                ("FullyConnectedOptions", {"FusedActivationFunction": act,
                                           "KeepNumDims": keep_num_dims}))


def text_encoder(vocab_size: int, seed: int) -> bytes:
    """Masked mean of token embeddings -> 2 dense layers -> L2-normalised 768-d."""
    rng = np.random.default_rng(seed)
    b = TfliteBuilder()
    ids = b.input("ids", [1, MAX_TEXT_LENGTH], np.int32)
    pad = b.input("paddings", [1, MAX_TEXT_LENGTH], _F32)
    table = b.const("token_embedding", rng.normal(0, 1, (vocab_size, _TEXT_WIDTH)).astype(_F32))
    emb = b.op("GATHER", [table, ids], [1, MAX_TEXT_LENGTH, _TEXT_WIDTH], _F32,
               ("GatherOptions", {"Axis": 0}))
    mask = b.op("SUB", [b.const("one", np.array(1.0, _F32)), pad], [1, MAX_TEXT_LENGTH], _F32,
                ("SubOptions", _NONE))
    mask3 = b.op("RESHAPE", [mask, b.const("mask_shape", np.array([1, MAX_TEXT_LENGTH, 1],
                                                                  np.int32))],
                 [1, MAX_TEXT_LENGTH, 1], _F32)
    masked = b.op("MUL", [emb, mask3], [1, MAX_TEXT_LENGTH, _TEXT_WIDTH], _F32, ("MulOptions", _NONE))
    axis1 = b.const("time_axis", np.array([1], np.int32))
    total = b.op("SUM", [masked, axis1], [1, _TEXT_WIDTH], _F32, ("ReducerOptions", {"KeepDims": False}))
    count = b.op("SUM", [mask3, axis1], [1, 1], _F32, ("ReducerOptions", {"KeepDims": False}))
    count = b.op("MAXIMUM", [count, b.const("one_f", np.array(1.0, _F32))], [1, 1], _F32)
    mean = b.op("DIV", [total, count], [1, _TEXT_WIDTH], _F32, ("DivOptions", _NONE))
    h = _fc(b, mean, rng.normal(0, 0.3, (EMBED_DIM, _TEXT_WIDTH)), rng.normal(0, 0.1, EMBED_DIM),
            [1, EMBED_DIM], "dense1")
    h = b.op("TANH", [h], [1, EMBED_DIM], _F32)
    h = _fc(b, h, rng.normal(0, 0.05, (EMBED_DIM, EMBED_DIM)), None, [1, EMBED_DIM], "dense2")
    return b.finish([_l2_normalize(b, h, [1, EMBED_DIM], "embedding")])


def audio_preprocessor(seed: int) -> bytes:
    """10 ms frames -> fixed random 'filterbank' -> log power: [1,1000,64]."""
    rng = np.random.default_rng(seed)
    frames = CLIP_SAMPLES // _FRAME
    b = TfliteBuilder()
    x = b.input("audio", [1, CLIP_SAMPLES], _F32)
    fr = b.op("RESHAPE", [x, b.const("frame_shape", np.array([1, frames, _FRAME], np.int32))],
              [1, frames, _FRAME], _F32)
    bank = _fc(b, fr, rng.normal(0, 1 / np.sqrt(_FRAME), (_FEATURES, _FRAME)), None,
               [1, frames, _FEATURES], "filterbank", keep_num_dims=True)
    power = b.op("SQUARE", [bank], [1, frames, _FEATURES], _F32)
    power = b.op("ADD", [power, b.const("log_eps", np.array(1e-6, _F32))], [1, frames, _FEATURES],
                 _F32, ("AddOptions", _NONE))
    out = b.op("LOG", [power], [1, frames, _FEATURES], _F32, out_name="features")
    return b.finish([out])


def music_encoder(seed: int) -> bytes:
    """Per-frame dense (ReLU) -> mean over time -> dense -> L2-normalised 768-d."""
    rng = np.random.default_rng(seed)
    frames = CLIP_SAMPLES // _FRAME
    b = TfliteBuilder()
    x = b.input("features", [1, frames, _FEATURES], _F32)
    h = _fc(b, x, rng.normal(0, 0.2, (_MUSIC_WIDTH, _FEATURES)), rng.normal(0, 0.1, _MUSIC_WIDTH),
            [1, frames, _MUSIC_WIDTH], "frame_dense", act=1, keep_num_dims=True)
    pooled = b.op("MEAN", [h, b.const("time_axis", np.array([1], np.int32))], [1, _MUSIC_WIDTH],
                  _F32, ("ReducerOptions", {"KeepDims": False}))
    h = _fc(b, pooled, rng.normal(0, 0.1, (EMBED_DIM, _MUSIC_WIDTH)), None, [1, EMBED_DIM], "proj")
    return b.finish([_l2_normalize(b, h, [1, EMBED_DIM], "embedding")])


def _codebook_factors(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (RVQ_DEPTH, CODEBOOK_SIZE, _RANK)).astype(_F32)
    # later levels quantize smaller residuals: shrink their scale
    scale = (0.5 ** np.arange(RVQ_DEPTH)).astype(_F32)[:, None, None]
    bf = (rng.normal(0, 1, (RVQ_DEPTH, _RANK, EMBED_DIM)) * scale / np.sqrt(_RANK * EMBED_DIM)
          ).astype(_F32)
    return a, bf


def synthetic_codebooks(seed: int) -> np.ndarray:
    """The quantizer's codebooks [12, 1024, 768], as numpy computes them."""
    a, bf = _codebook_factors(seed)
    return np.einsum("kcr,krd->kcd", a, bf).astype(_F32)


def vector_quantizer(seed: int) -> bytes:
    """Residual VQ: per level, nearest code (|c|^2 - 2 r.c), subtract, next level."""
    a, bf = _codebook_factors(seed)
    b = TfliteBuilder()
    r = b.input("embedding", [1, EMBED_DIM], _F32)
    axis1 = b.const("code_axis", np.array([1], np.int32))
    two = b.const("two", np.array(2.0, _F32))
    tokens = []
    for k in range(RVQ_DEPTH):
        cb = b.op("BATCH_MATMUL", [b.const(f"level{k}/a", a[k]), b.const(f"level{k}/b", bf[k])],
                  [CODEBOOK_SIZE, EMBED_DIM], _F32,
                  ("BatchMatMulOptions", {"AdjX": False, "AdjY": False}))
        sq = b.op("MUL", [cb, cb], [CODEBOOK_SIZE, EMBED_DIM], _F32, ("MulOptions", _NONE))
        norms = b.op("SUM", [sq, axis1], [CODEBOOK_SIZE], _F32, ("ReducerOptions", {"KeepDims": False}))
        dots = b.op("FULLY_CONNECTED", [r, cb, -1], [1, CODEBOOK_SIZE], _F32,
                    ("FullyConnectedOptions", _NONE))
        dots2 = b.op("MUL", [dots, two], [1, CODEBOOK_SIZE], _F32, ("MulOptions", _NONE))
        dist = b.op("SUB", [norms, dots2], [1, CODEBOOK_SIZE], _F32, ("SubOptions", _NONE))
        idx = b.op("ARG_MIN", [dist, axis1], [1], np.int32, ("ArgMinOptions", {"OutputType": 2}))
        tokens.append(idx)
        if k + 1 < RVQ_DEPTH:
            chosen = b.op("GATHER", [cb, idx], [1, EMBED_DIM], _F32, ("GatherOptions", {"Axis": 0}))
            r = b.op("SUB", [r, chosen], [1, EMBED_DIM], _F32, ("SubOptions", _NONE))
    cat = b.op("CONCATENATION", tokens, [RVQ_DEPTH], np.int32,
               ("ConcatenationOptions", {"Axis": 0, "FusedActivationFunction": 0}))
    out = b.op("RESHAPE", [cat, b.const("tokens_shape", np.array([1, RVQ_DEPTH], np.int32))],
               [1, RVQ_DEPTH], np.int32, out_name="tokens")
    return b.finish([out])


def mapper(seed: int) -> bytes:
    """Text->audio mapper stand-in: [embedding, noise] -> dense (ReLU) -> dense, plus the embedding.

    Upstream feeds input 0 the text embedding and input 1 Gaussian noise
    (``magenta_rt/musiccoca.py``) and L2-normalises the output itself.
    """
    rng = np.random.default_rng(seed)
    b = TfliteBuilder()
    emb = b.input("embedding", [1, EMBED_DIM], _F32)
    noise = b.input("noise", [1, EMBED_DIM], _F32)
    cat = b.op("CONCATENATION", [emb, noise], [1, 2 * EMBED_DIM], _F32,
               ("ConcatenationOptions", {"Axis": 1, "FusedActivationFunction": 0}))
    h = _fc(b, cat, rng.normal(0, 0.05, (_MAPPER_WIDTH, 2 * EMBED_DIM)), rng.normal(0, 0.1, _MAPPER_WIDTH),
            [1, _MAPPER_WIDTH], "mapper/hidden", act=1)
    h = _fc(b, h, rng.normal(0, 0.1, (EMBED_DIM, _MAPPER_WIDTH)), None, [1, EMBED_DIM], "mapper/out")
    out = b.op("ADD", [h, emb], [1, EMBED_DIM], _F32, ("AddOptions", _NONE), out_name="mapped")
    return b.finish([out])
