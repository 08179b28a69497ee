"""The frame engine: steps a model package one 40 ms frame at a time.

One thread owns an Engine's model step (it is not thread-safe); the codec
decode may run on a second thread (:class:`bridge.pipeline.CodecOverlap`). It
holds the ONNX Runtime sessions and all streaming state. Per frame, with
``R = 1 + num_cfgs`` rows (positive, style-negative, notes-negative)::

    conditioning[144] -> R rows -> encoder -> encoded [R, E]
    prev tokens (same in every row) + encoded -> temporal step (R KV windows) -> [R, D]
    temporal_out -> depth decoder (12 levels; per level the R rows' logits are mixed
        full + s_style (full - neg_style) + s_notes (full - neg_notes), then top-k
        Gumbel-max once, the token fed back to every row) -> 12 tokens
    codes = (tokens - 6) % 1024 -> codec decoder (conv state) -> 1920 x 2 samples

A prefill (:meth:`Engine.prefill`) steps the temporal stack over given tokens
and keeps a snapshot of the result; :meth:`Engine.reset` returns to it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import CODEBOOK_SIZE, FRAME_SAMPLES, SAMPLE_RATE, TOKENS_PER_FRAME
from . import io_names as io
from .conditioning import (
    CONDITIONING_LENGTH,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_K,
    Conditioning,
    check_num_cfgs,
    guidance_from_vector,
    guidance_rows,
    validate_vector,
)
from .package import Package, load_package
from .runtime import StatefulSession, frame_threads, make_session, resolve_providers, warn_int8_scheme

log = logging.getLogger(__name__)

NUM_RESERVED_TOKENS = 6
OUTPUT_GAIN = 0.5  # upstream scales the decoder output by 0.5 before int16
DEFAULT_NUM_CFGS = 2  # upstream's live engine (mlx/export.py)


def tokens_to_codes(tokens: np.ndarray) -> np.ndarray:
    """Model token ids (6 + level*1024 + code) -> codec codes 0..1023."""
    return (np.asarray(tokens, np.int64) - NUM_RESERVED_TOKENS) % CODEBOOK_SIZE


def codes_to_tokens(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, np.int64)
    return codes + NUM_RESERVED_TOKENS + CODEBOOK_SIZE * np.arange(codes.shape[-1])


@dataclass
class Frame:
    index: int
    tokens: np.ndarray  # int64[12] model tokens
    codes: np.ndarray  # int64[12] codec codes
    audio: np.ndarray | None  # float32[1920, 2], or None (no codec, or decoded elsewhere)
    logits: np.ndarray  # float32[12, 1024] guided soft-capped logits of each level
    timings_ms: dict[str, float] = field(default_factory=dict)
    depth_threads: int = 0  # intra-op threads the depth decoder ran on


@dataclass
class _Prefilled:
    """Everything :meth:`Engine.reset` restores: temporal KV windows and the next input tokens."""

    temporal: dict[str, np.ndarray]
    prev_tokens: np.ndarray
    frames: int


class Engine:
    """Load a model package into ONNX Runtime and generate frames from conditioning."""

    def __init__(
        self,
        package: Path | str | Package,
        provider: str = "auto",
        *,
        threads: int | None = None,
        seed: int = 0,
        decode_audio: bool = True,
        num_cfgs: int = DEFAULT_NUM_CFGS,
        codec_threads: int | None = None,
    ) -> None:
        self.package = package if isinstance(package, Package) else load_package(package)
        self.providers = resolve_providers(provider)
        warn_int8_scheme(self.package, self.providers)
        self.num_cfgs = check_num_cfgs(num_cfgs)
        self.rows = 1 + self.num_cfgs
        root = self.package

        ft = frame_threads(threads, codec_threads)
        wide = ft.depth_wide if self.providers[0] == "CPUExecutionProvider" else 0
        self.threads = {"model": ft.model, "codec": ft.codec, "depth_wide": wide}
        self.encoder = self._session(io.ENCODER, self.rows)
        self.temporal = self._session(io.TEMPORAL, self.rows)
        self.depth = self._session(io.DEPTH, self.rows)
        # The depth graph again on the model's and the codec thread's cores, opened when a codec
        # thread first lends its core (share_codec_core): a second copy of its weights (~95 MB for
        # mrt2_small int8) that an engine decoding in line never needs.
        self._depth_wide: StatefulSession | None = None
        self.codec_busy: Callable[[], bool] | None = None  # see share_codec_core
        self.codec: StatefulSession | None = None
        if decode_audio and root.has_graph(io.CODEC_DECODER):
            self.codec = self._session(io.CODEC_DECODER, n_threads=ft.codec)
        elif decode_audio:
            log.warning("package %s has no codec decoder: frames carry tokens only", root.root)
        self._codec_encoder: StatefulSession | None = None
        self.sample_rate = SAMPLE_RATE
        self.frame_samples = FRAME_SAMPLES
        self.channels = 2
        # Per-frame inputs, allocated once.
        self._cond_rows = np.empty((self.rows, CONDITIONING_LENGTH), np.int64)
        self._prev_rows = np.zeros((self.rows, TOKENS_PER_FRAME), np.int64)
        self._guidance = np.zeros((1, self.rows), np.float32)
        self._temperature = np.zeros(1, np.float32)
        self._top_k = np.zeros(1, np.int64)
        self._forced = np.zeros((1, TOKENS_PER_FRAME), np.int64)
        self._no_force = np.zeros((1, TOKENS_PER_FRAME), np.bool_)
        self._all_forced = np.ones((1, TOKENS_PER_FRAME), np.bool_)
        self._prefilled: _Prefilled | None = None
        self.reset(seed)

    def share_codec_core(self, busy: Callable[[], bool] | None) -> None:
        """Let the depth decoder use the codec thread's core in frames where ``busy()`` is False
        (bridge.pipeline.CodecOverlap; None: no codec thread, the depth decoder keeps its own threads).
        A method, so engine wrappers that forward attribute reads (live input, session recording)
        reach the engine itself."""
        wide = self.threads["depth_wide"]
        if busy is not None and wide and self._depth_wide is None:
            self._depth_wide = self._session(io.DEPTH, self.rows, wide, spin=True)
        self.codec_busy = busy

    def _session(self, name: str, rows: int = 1, n_threads: int | None = None, spin: bool = False) -> StatefulSession:
        """One graph of the package in its own ORT session (``n_threads``: default the model's)."""
        n = n_threads or self.threads["model"]
        return StatefulSession(make_session(self.package.graph_path(name), self.providers, n, spin), name, rows)

    @property
    def provider(self) -> str:
        return self.encoder.session.get_providers()[0]

    @property
    def is_synthetic(self) -> bool:
        return self.package.synthetic

    @property
    def prefilled_frames(self) -> int:
        """Frames of context the stream starts from (0 without a prefill)."""
        return 0 if self._prefilled is None else self._prefilled.frames

    def reset(self, seed: int | None = None) -> None:
        """Back to the start of the stream (the prefilled state, if any; silent codec), optionally reseeded."""
        if seed is not None:
            self.seed = int(seed)
            self.rng = np.random.default_rng(self.seed)
        for s in (self.encoder, self.temporal, self.depth, self._depth_wide, self.codec):
            if s is not None:
                s.reset()
        if self._prefilled is None:
            self._prev_rows[:] = 0  # SOS = token 0
        else:
            self.temporal.restore(self._prefilled.temporal)
            self._prev_rows[:] = self._prefilled.prev_tokens
        self.frame_index = 0

    @property
    def prev_tokens(self) -> np.ndarray:
        """Model tokens [12] the next frame's temporal step reads."""
        return self._prev_rows[0]

    # ------------------------------------------------------------------ frames
    def generate(
        self,
        conditioning: np.ndarray | Conditioning,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        *,
        guidance: tuple[float, float, float] | None = None,
        forced_tokens: np.ndarray | None = None,
        prev_tokens: np.ndarray | None = None,
    ) -> Frame:
        """The model step of one frame (no audio): encoder, temporal step, guided depth decoding.

        ``guidance`` holds the raw (style, notes, drums) scales that weight the logit mix;
        by default they come from the conditioning (a :class:`Conditioning`'s fields, or
        the bins of a raw vector). ``forced_tokens`` (model token ids) teacher-forces the
        depth loop; ``prev_tokens`` replaces this frame's temporal input (e.g. tokens of
        live input audio).
        """
        if isinstance(conditioning, Conditioning):
            vec = conditioning.to_vector()
            scales = guidance or (conditioning.cfg_style, conditioning.cfg_notes, conditioning.cfg_drums)
        else:
            vec = validate_vector(conditioning)
            scales = guidance or guidance_from_vector(vec)
        if not np.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a finite value >= 0, got {temperature!r}")
        if int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k!r}")
        if prev_tokens is not None:
            self._prev_rows[:] = np.asarray(prev_tokens, np.int64).reshape(TOKENS_PER_FRAME)
        t0 = time.perf_counter()
        guidance_rows(vec, self.num_cfgs, self._cond_rows)
        encoded = self.encoder.run({io.CONDITIONING: self._cond_rows})[io.ENCODED]
        t1 = time.perf_counter()
        temporal_out = self.temporal.run({io.PREV_TOKENS: self._prev_rows, io.ENCODED: encoded})[io.TEMPORAL_OUT]
        t2 = time.perf_counter()
        if forced_tokens is None:
            mask = self._no_force
        else:
            self._forced[0] = np.asarray(forced_tokens, np.int64).reshape(TOKENS_PER_FRAME)
            mask = self._all_forced
        self._guidance[0, 1:] = scales[: self.num_cfgs]
        self._temperature[0] = temperature
        self._top_k[0] = top_k
        gumbel = self.rng.gumbel(size=(1, TOKENS_PER_FRAME, CODEBOOK_SIZE)).astype(np.float32)
        wide = self._depth_wide is not None and self.codec_busy is not None and not self.codec_busy()
        depth = self._depth_wide if wide else self.depth
        out = depth.run({
            io.TEMPORAL_OUT: temporal_out,
            io.GUIDANCE: self._guidance,
            io.TEMPERATURE: self._temperature,
            io.TOP_K: self._top_k,
            io.GUMBEL: gumbel,
            io.FORCED_TOKENS: self._forced,
            io.FORCE_MASK: mask,
        })
        t3 = time.perf_counter()
        tokens = out[io.TOKENS][0]
        self._prev_rows[:] = tokens
        frame = Frame(
            index=self.frame_index,
            tokens=tokens,
            codes=tokens_to_codes(tokens),
            audio=None,
            logits=out[io.LOGITS][0],
            timings_ms={
                "encoder": (t1 - t0) * 1e3,
                "temporal": (t2 - t1) * 1e3,
                "depth": (t3 - t2) * 1e3,
            },
            depth_threads=self.threads["depth_wide" if wide else "model"],
        )
        self.frame_index += 1
        return frame

    def decode(self, codes: np.ndarray) -> np.ndarray | None:
        """Codec-decode one frame's 12 codes to float32 [1920, 2] (None without a codec)."""
        if self.codec is None:
            return None
        raw = self.codec.run({io.CODES: np.asarray(codes, np.int64).reshape(1, TOKENS_PER_FRAME)})[io.AUDIO][0]
        return np.clip(raw * OUTPUT_GAIN, -1.0, 1.0).astype(np.float32, copy=False)

    def step(
        self,
        conditioning: np.ndarray | Conditioning,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        **kwargs,
    ) -> Frame:
        """:meth:`generate` then :meth:`decode`: one whole frame, audio included."""
        frame = self.generate(conditioning, temperature, top_k, **kwargs)
        t0 = time.perf_counter()
        frame.audio = self.decode(frame.codes)
        codec_ms = (time.perf_counter() - t0) * 1e3
        frame.timings_ms["codec"] = codec_ms
        frame.timings_ms["total"] = sum(frame.timings_ms[k] for k in ("encoder", "temporal", "depth")) + codec_ms
        return frame

    # ------------------------------------------------------------------ prefill
    def prefill(
        self,
        tokens: np.ndarray,
        conditioning: np.ndarray,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Start the stream (now and after every :meth:`reset`) from ``tokens`` [N, 12] of context.

        As upstream's live engine (``prefill_with_token_array``): the temporal stack is
        stepped with tokens[0..N-2] as previous-frame inputs under ``conditioning`` (upstream
        masks style and notes there), and tokens[N-1] becomes the next frame's input. The
        depth decoder is stateless and not run. The result is kept as a snapshot.
        """
        tokens = np.asarray(tokens, np.int64)
        if tokens.ndim != 2 or tokens.shape[1] != TOKENS_PER_FRAME or len(tokens) < 1:
            raise ValueError(f"prefill tokens: expected shape [N >= 1, 12], got {tokens.shape}")
        self._prefilled = None
        self.reset()
        vec = validate_vector(conditioning)
        guidance_rows(vec, self.num_cfgs, self._cond_rows)
        encoded = self.encoder.run({io.CONDITIONING: self._cond_rows})[io.ENCODED]
        n = len(tokens) - 1
        for i in range(n):
            self._prev_rows[:] = tokens[i]
            self.temporal.run({io.PREV_TOKENS: self._prev_rows, io.ENCODED: encoded})
            if progress is not None and (i % 50 == 0 or i == n - 1):
                progress(i + 1, n)
        self._prefilled = _Prefilled(self.temporal.snapshot(), tokens[-1].copy(), len(tokens))
        self.reset()

    def clear_prefill(self) -> None:
        """Forget the prefill: later resets start from an empty stream."""
        self._prefilled = None

    # ------------------------------------------------------------------ codec encoder
    @property
    def has_codec_encoder(self) -> bool:
        return self.package.has_graph(io.CODEC_ENCODER)

    def encode_audio(self, audio: np.ndarray) -> np.ndarray:
        """48 kHz stereo float32 [n, 2] -> codes [n // 1920, 12] with the streaming SpectroStream encoder.

        The encoder returns frame k's codes one call later; the extra calls are fed silence.
        """
        if not self.has_codec_encoder:
            raise ValueError(f"model package {self.package.root} has no codec encoder (audio -> tokens); "
                             "export it with the SpectroStream encoder weights")
        if self._codec_encoder is None:
            self._codec_encoder = self._session(io.CODEC_ENCODER)
        enc = self._codec_encoder
        enc.reset()
        latency = int(self.package.manifest.get("codec", {}).get("encoder", {}).get("latency_frames", 1))
        frames = len(audio) // FRAME_SAMPLES
        audio = np.asarray(audio[: frames * FRAME_SAMPLES], np.float32).reshape(frames, 1, FRAME_SAMPLES, 2)
        silence = np.zeros((1, FRAME_SAMPLES, 2), np.float32)
        codes = [enc.run({io.AUDIO: chunk})[io.CODES][0] for chunk in [*audio, *[silence] * latency]]
        return np.asarray(codes[latency:], np.int64).reshape(frames, TOKENS_PER_FRAME)
