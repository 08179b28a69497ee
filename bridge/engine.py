"""The frame engine: steps a model package one 40 ms frame at a time.

One thread owns an Engine (it is not thread-safe): it holds the ONNX Runtime
sessions and all streaming state. Per frame::

    conditioning[144] -> encoder -> encoded
    prev tokens + encoded -> temporal step (KV windows) -> temporal_out
    temporal_out -> depth decoder (12 levels, top-k Gumbel-max) -> 12 tokens
    codes = (tokens - 6) % 1024 -> codec decoder (conv state) -> 1920 x 2 samples
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import CODEBOOK_SIZE, FRAME_SAMPLES, SAMPLE_RATE, TOKENS_PER_FRAME
from . import io_names as io
from .conditioning import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_K,
    Conditioning,
    validate_vector,
)
from .package import Package, load_package
from .runtime import StatefulSession, make_session, resolve_providers

log = logging.getLogger(__name__)

NUM_RESERVED_TOKENS = 6
OUTPUT_GAIN = 0.5  # upstream scales the decoder output by 0.5 before int16


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
    audio: np.ndarray | None  # float32[1920, 2], or None without a codec
    logits: np.ndarray  # float32[12, 1024] soft-capped logits of each level
    timings_ms: dict[str, float] = field(default_factory=dict)


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
    ) -> None:
        self.package = package if isinstance(package, Package) else load_package(package)
        self.providers = resolve_providers(provider)
        root = self.package
        self.encoder = StatefulSession(make_session(root.graph_path(io.ENCODER), self.providers, threads), "encoder")
        self.temporal = StatefulSession(make_session(root.graph_path(io.TEMPORAL), self.providers, threads), "temporal")
        self.depth = StatefulSession(make_session(root.graph_path(io.DEPTH), self.providers, threads), "depth")
        self.codec: StatefulSession | None = None
        if decode_audio and root.has_graph(io.CODEC_DECODER):
            self.codec = StatefulSession(
                make_session(root.graph_path(io.CODEC_DECODER), self.providers, threads), "codec_decoder"
            )
        elif decode_audio:
            log.warning("package %s has no codec decoder: frames carry tokens only", root.root)
        self.sample_rate = SAMPLE_RATE
        self.frame_samples = FRAME_SAMPLES
        self.channels = 2
        self._no_force = np.zeros(TOKENS_PER_FRAME, np.bool_)
        self._zeros_tokens = np.zeros(TOKENS_PER_FRAME, np.int64)
        self.reset(seed)

    @property
    def provider(self) -> str:
        return self.encoder.session.get_providers()[0]

    @property
    def is_synthetic(self) -> bool:
        return self.package.synthetic

    def reset(self, seed: int | None = None) -> None:
        """Start a fresh stream (empty KV windows, silent codec state), optionally reseeded."""
        if seed is not None:
            self.seed = int(seed)
            self.rng = np.random.default_rng(self.seed)
        for s in (self.encoder, self.temporal, self.depth, self.codec):
            if s is not None:
                s.reset()
        self.prev_tokens = np.zeros((1, TOKENS_PER_FRAME), np.int64)  # SOS = token 0
        self.frame_index = 0

    def step(
        self,
        conditioning: np.ndarray | Conditioning,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        *,
        forced_tokens: np.ndarray | None = None,
        prev_tokens: np.ndarray | None = None,
    ) -> Frame:
        """Generate one frame. ``forced_tokens`` (model token ids) teacher-forces the depth loop;
        ``prev_tokens`` (model token ids [12]) replaces the previous frame's tokens as this step's
        temporal input (live audio in)."""
        vec = conditioning.to_vector() if isinstance(conditioning, Conditioning) else validate_vector(conditioning)
        if not np.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a finite value >= 0, got {temperature!r}")
        if int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k!r}")
        t0 = time.perf_counter()
        encoded = self.encoder.run({io.CONDITIONING: vec.astype(np.int64)[None]})[io.ENCODED]
        t1 = time.perf_counter()
        prev = self.prev_tokens if prev_tokens is None else np.asarray(prev_tokens, np.int64).reshape(1, -1)
        temporal_out = self.temporal.run({io.PREV_TOKENS: prev, io.ENCODED: encoded})[io.TEMPORAL_OUT]
        t2 = time.perf_counter()
        if forced_tokens is None:
            forced, mask = self._zeros_tokens, self._no_force
        else:
            forced = np.asarray(forced_tokens, np.int64).reshape(TOKENS_PER_FRAME)
            mask = np.ones(TOKENS_PER_FRAME, np.bool_)
        gumbel = self.rng.gumbel(size=(TOKENS_PER_FRAME, CODEBOOK_SIZE)).astype(np.float32)
        out = self.depth.run({
            io.TEMPORAL_OUT: temporal_out,
            io.TEMPERATURE: np.array([temperature], np.float32),
            io.TOP_K: np.array([top_k], np.int64),
            io.GUMBEL: gumbel,
            io.FORCED_TOKENS: forced,
            io.FORCE_MASK: mask,
        })
        t3 = time.perf_counter()
        tokens = out[io.TOKENS]
        codes = tokens_to_codes(tokens)
        audio = None
        if self.codec is not None:
            raw = self.codec.run({io.CODES: codes[None]})[io.AUDIO][0]
            audio = np.clip(raw * OUTPUT_GAIN, -1.0, 1.0).astype(np.float32, copy=False)
        t4 = time.perf_counter()
        self.prev_tokens = tokens[None]
        frame = Frame(
            index=self.frame_index,
            tokens=tokens,
            codes=codes,
            audio=audio,
            logits=out[io.LOGITS],
            timings_ms={
                "encoder": (t1 - t0) * 1e3,
                "temporal": (t2 - t1) * 1e3,
                "depth": (t3 - t2) * 1e3,
                "codec": (t4 - t3) * 1e3,
                "total": (t4 - t0) * 1e3,
            },
        )
        self.frame_index += 1
        return frame
