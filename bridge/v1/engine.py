"""The v1 chunk engine: upstream's ``MagentaRTT5X.generate_chunk`` on a v1 model package.

Per 2 s chunk (``generate_chunk``)::

    context tokens (250, 16) (-1 = nothing yet -> MASK) + style tokens (6, or MASK)
      -> encoder tokens [rows, 1006] (row 1: style MASKed, only when guidance is on)
      -> encoder graph -> cross K/V of every temporal layer
      -> 50 x (temporal step -> depth graph: 16 levels, guidance, top-k Gumbel-max) -> (50, 16)
      -> EOS (id 1) ends the chunk: later tokens are 0 -> RVQ codes ``max(t - 2, 0) % 1024``
      -> codec: last context frame (zeros on chunk 0) + 50 frames -> 51 x 1920 samples
      -> equal-power crossfade of the first 1920 samples with the previous chunk's tail

and the state moves on exactly as upstream's ``MagentaRTState.update``: the context shifts
left by 50 frames, the last 1920 decoded samples become the next crossfade, chunk_index + 1.
The Gumbel noise of chunk ``i`` comes from ``numpy.random.default_rng(seed + i)`` (upstream
uses ``jax.random.PRNGKey(seed + i)``; sampled tokens differ from upstream's, greedy ones do
not).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge import io_names as io
from bridge.package import Package, PackageError, load_package
from bridge.runtime import StatefulSession, make_session, resolve_providers, warn_int8_scheme
from onnx_export.v1 import config as v1

from . import io_names as v1io

log = logging.getLogger(__name__)

MIN_TEMPERATURE = 1e-4  # t5x decoding.MIN_TEMPERATURE: at or below it sampling is greedy
FAMILY = "v1"


def package_family(pkg: Package) -> str:
    """``"v1"`` for a v1 package, ``"mrt2"`` for every package written before families existed."""
    return str(pkg.manifest.get("family", "mrt2"))


def is_v1_package(path: Path | str) -> bool:
    """True when ``path`` is a readable package whose manifest says ``"family": "v1"`` (no checksums)."""
    try:
        return package_family(load_package(path, verify=False)) == FAMILY
    except PackageError:
        return False


def rvq_to_llm(codes: np.ndarray, offset: int) -> np.ndarray:
    """RVQ codes [..., L] -> LM ids ``code + offset + level * 1024`` (upstream utils.rvq_to_llm)."""
    codes = np.asarray(codes, np.int64)
    return codes + offset + v1.CODEBOOK_SIZE * np.arange(codes.shape[-1])


def llm_to_rvq(tokens: np.ndarray) -> np.ndarray:
    """LM ids -> RVQ codes ``max(t - 2, 0) % 1024`` (upstream ``llm_to_rvq(..., safe=False)``)."""
    return (np.maximum(np.asarray(tokens, np.int64) - v1.CODEC_OFFSET, 0) % v1.CODEBOOK_SIZE).astype(np.int32)


def check_style_tokens(style_tokens: np.ndarray | None) -> np.ndarray | None:
    """MusicCoCa RVQ codes (at least 6, 0..1023; the first 6 are used), or None (no style)."""
    if style_tokens is None:
        return None
    tokens = np.asarray(style_tokens)
    if tokens.ndim != 1 or tokens.size < v1.STYLE_LEVELS or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"style tokens: expected at least {v1.STYLE_LEVELS} integer codes, got shape {tokens.shape}")
    tokens = tokens[: v1.STYLE_LEVELS].astype(np.int64)
    if tokens.min() < 0 or tokens.max() >= v1.STYLE_CODEBOOK_SIZE:
        raise ValueError(f"style tokens must be in 0..{v1.STYLE_CODEBOOK_SIZE - 1}")
    return tokens


def encoder_tokens(context: np.ndarray, style_tokens: np.ndarray | None) -> np.ndarray:
    """[2, 1006] int64: context frames' first 4 levels (MASK where -1) + style; row 1 style-MASKed."""
    ctx = np.where(context >= 0, rvq_to_llm(np.maximum(context, 0), v1.CODEC_OFFSET), v1.MASK_ID)
    style = check_style_tokens(style_tokens)
    style_lm = np.full(v1.STYLE_LEVELS, v1.MASK_ID, np.int64) if style is None else rvq_to_llm(style, v1.STYLE_OFFSET)
    pos = np.concatenate([ctx[:, : v1.ENCODER_LEVELS].reshape(-1), style_lm])
    neg = pos.copy()
    neg[-v1.STYLE_LEVELS:] = v1.MASK_ID
    return np.stack([pos, neg]).astype(np.int64)


def crossfade_ramp() -> np.ndarray:
    """Upstream's equal-power fade-in ``sin(linspace(0, pi/2, n, endpoint=False))`` (float32), [n, 1]."""
    n = v1.CROSSFADE_SAMPLES
    return np.sin(np.linspace(0, np.pi / 2, n, endpoint=False, dtype=np.float32))[:, None]


@dataclass
class V1State:
    """Upstream's ``MagentaRTState``: token context, crossfade tail, chunk index."""

    context_tokens: np.ndarray = field(
        default_factory=lambda: np.full((v1.CONTEXT_FRAMES, v1.DECODER_LEVELS), -1, np.int32))
    crossfade_samples: np.ndarray = field(
        default_factory=lambda: np.zeros((v1.CROSSFADE_SAMPLES, v1.NUM_CHANNELS), np.float32))
    chunk_index: int = 0

    def update(self, chunk_tokens: np.ndarray, crossfade_samples: np.ndarray) -> None:
        """Shift the context left by the chunk's frames and append them; keep the new tail."""
        chunk_tokens = np.asarray(chunk_tokens, np.int32)
        if chunk_tokens.ndim != 2 or chunk_tokens.shape[1] != v1.DECODER_LEVELS or \
                chunk_tokens.shape[0] > v1.CONTEXT_FRAMES:
            raise ValueError(f"chunk tokens: expected (N <= {v1.CONTEXT_FRAMES}, 16), got {chunk_tokens.shape}")
        if chunk_tokens.min() < 0 or chunk_tokens.max() >= v1.CODEBOOK_SIZE:
            raise ValueError("chunk tokens must be RVQ codes in 0..1023")
        self.crossfade_samples = np.asarray(crossfade_samples, np.float32)
        self.context_tokens = np.concatenate([self.context_tokens[chunk_tokens.shape[0]:], chunk_tokens])
        self.chunk_index += 1


@dataclass
class Chunk:
    """One generated chunk: RVQ codes (50, 16) int32, audio (96000, 2) float32 (None without a codec)."""

    tokens: np.ndarray
    audio: np.ndarray | None
    lm_tokens: np.ndarray  # the LM ids as sampled (EOS-masked), (50, 16) int64
    timings_ms: dict[str, float]


class V1Engine:
    """Generates 2 s chunks from a v1 package. One thread at a time (not thread-safe)."""

    def __init__(self, package: Package | Path | str, provider: str = "auto", threads: int | None = None) -> None:
        self.package = package if isinstance(package, Package) else load_package(package)
        if package_family(self.package) != FAMILY:
            raise PackageError(f"{self.package.root} is not a Magenta RT v1 package (family "
                               f"{package_family(self.package)!r}); use it with the MRT2 engine")
        self.providers = resolve_providers(provider)
        warn_int8_scheme(self.package, self.providers)
        self.provider = self.providers[0]

        def session(name: str):
            return make_session(self.package.graph_path(name), self.providers, threads)

        self._encoder = session(io.ENCODER)
        temporal = session(io.TEMPORAL)
        # One state set per batch size: 2 rows with guidance, 1 without (upstream's w = 0 path).
        self._temporal = {rows: StatefulSession(temporal, io.TEMPORAL, rows=rows) for rows in (1, 2)}
        self._depth = session(io.DEPTH)
        self.codec = None
        self.codec_gain = 1.0
        self.codec_latency = 0
        if self.package.has_graph(io.CODEC_DECODER):
            entry = self.package.manifest["codec"]
            self.codec = StatefulSession(session(io.CODEC_DECODER), io.CODEC_DECODER)
            self.codec_gain = float(entry.get("output_gain", 1.0))
            self.codec_latency = int(entry.get("latency_frames", 0))
        self.state = V1State()

    @property
    def is_synthetic(self) -> bool:
        return self.package.synthetic

    @property
    def size(self) -> str:
        return self.package.size

    def reset(self) -> None:
        """Back to upstream's initial state: empty (MASKed) context, silent crossfade, chunk 0."""
        self.state = V1State()

    # -- the LM -------------------------------------------------------------------
    def generate_tokens(self, style_tokens: np.ndarray | None, seed: int, guidance_weight: float,
                        temperature: float, topk: int) -> tuple[np.ndarray, dict[str, float]]:
        """The chunk's LM ids (50, 16) int64 (EOS-masked) for the current context; state unchanged."""
        if not np.isfinite(guidance_weight) or not np.isfinite(temperature) or temperature < 0:
            raise ValueError("guidance must be finite and temperature finite and >= 0")
        rows = 2 if guidance_weight != 0.0 else 1
        t0 = time.perf_counter()
        enc = encoder_tokens(self.state.context_tokens, style_tokens)[:rows]
        cross = dict(zip((o.name for o in self._encoder.get_outputs()),
                         self._encoder.run(None, {v1io.ENCODER_TOKENS: enc})))
        t1 = time.perf_counter()
        temporal = self._temporal[rows]
        temporal.reset()
        greedy = temperature <= MIN_TEMPERATURE
        k = int(topk) if 0 < int(topk) < v1.NUM_EMBEDDINGS else v1.NUM_EMBEDDINGS
        rng = np.random.default_rng(seed + self.state.chunk_index)
        noise = np.zeros((1, v1.DECODER_LEVELS, k), np.float32)
        feeds = {io.GUIDANCE: np.array([guidance_weight], np.float32),
                 io.TEMPERATURE: np.array([0.0 if greedy else temperature], np.float32),
                 io.TOP_K: np.array([k], np.int64), io.GUMBEL: noise}
        tokens = np.zeros((v1.CHUNK_FRAMES, v1.DECODER_LEVELS), np.int64)
        prev = np.zeros((rows, v1.DECODER_LEVELS), np.int64)  # frame 0: 16 x BOS (= 0)
        for f in range(v1.CHUNK_FRAMES):
            t_out = temporal.run({io.PREV_TOKENS: prev, **cross})[io.TEMPORAL_OUT]
            if not greedy:
                noise[...] = rng.gumbel(size=noise.shape)
            frame = self._depth.run([io.TOKENS], {io.TEMPORAL_OUT: t_out, **feeds})[0][0]
            tokens[f] = frame
            if (frame == v1.MASK_ID).any():  # EOS: upstream pads the rest of the chunk with 0
                break
            prev[:] = frame
        flat = tokens.reshape(-1)
        eos = np.flatnonzero(flat == v1.MASK_ID)
        if eos.size:
            flat[eos[0] + 1:] = 0
        t2 = time.perf_counter()
        return tokens, {"encoder_ms": (t1 - t0) * 1e3, "decoder_ms": (t2 - t1) * 1e3}

    # -- the codec ----------------------------------------------------------------
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """RVQ codes (N, 16) -> audio (N * 1920, 2) from a fresh codec state (upstream decodes each chunk alone).

        The streaming decoder's output lags ``latency_frames`` behind its input, so the last
        frame's codes are fed again that many times to flush it out.
        """
        if self.codec is None:
            raise RuntimeError(f"{self.package.root}: the package has no codec decoder (no audio)")
        codes = np.asarray(codes, np.int64)
        self.codec.reset()
        feed = np.concatenate([codes, np.repeat(codes[-1:], self.codec_latency, axis=0)])
        out = [self.codec.run({io.CODES: feed[i: i + 1]})[io.AUDIO][0] for i in range(len(feed))]
        return np.concatenate(out[self.codec_latency:]) * np.float32(self.codec_gain)

    # -- a chunk ------------------------------------------------------------------
    def generate_chunk(self, style_tokens: np.ndarray | None = None, seed: int | None = None,
                       guidance_weight: float = v1.DEFAULT_GUIDANCE_WEIGHT,
                       temperature: float = v1.DEFAULT_TEMPERATURE, topk: int = v1.DEFAULT_TOPK) -> Chunk:
        """Generate the next 2 s and advance the state (upstream ``generate_chunk``)."""
        if seed is None:
            seed = int(np.random.randint(0, 2**31))
        lm_tokens, timings = self.generate_tokens(style_tokens, seed, guidance_weight, temperature, topk)
        rvq = llm_to_rvq(lm_tokens)
        state = self.state
        audio = None
        if self.codec is not None:
            t0 = time.perf_counter()
            xfade_frames = state.context_tokens[-v1.CROSSFADE_FRAMES:]
            if state.chunk_index == 0:  # upstream: 40 ms of gibberish, faded in from silence
                xfade_frames = np.zeros_like(xfade_frames)
            with_xfade = self.decode(np.concatenate([xfade_frames, rvq]))
            tail = with_xfade[-v1.CROSSFADE_SAMPLES:].copy()
            audio = with_xfade[: -v1.CROSSFADE_SAMPLES].copy()
            ramp = crossfade_ramp()
            audio[: v1.CROSSFADE_SAMPLES] *= ramp
            audio[: v1.CROSSFADE_SAMPLES] += state.crossfade_samples * ramp[::-1]
            timings["codec_ms"] = (time.perf_counter() - t0) * 1e3
        else:
            tail = np.zeros((v1.CROSSFADE_SAMPLES, v1.NUM_CHANNELS), np.float32)
        state.update(rvq, tail)
        return Chunk(rvq, audio, lm_tokens, timings)
