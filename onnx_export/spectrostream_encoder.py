"""SpectroStream streaming ENCODER graph: 40 ms of 48 kHz stereo audio -> 12 RVQ codes.

Matches upstream's step-wise ``waveform_to_codes_layer`` (magenta-rt 2.0.3,
``magenta_rt/jax/spectrostream.py``: ``stft`` -> ``encoder`` -> ``quantizer.embeddings_to_codes``)
called once per 1920-sample frame from its initial state, including its start-up masking.

Upstream's STFT uses ``reverse_causal`` framing (960/480): step-wise it keeps the last 480
samples, so call k yields STFT frames that start 480 samples before the call's audio. Each
strided conv level is ``semicausal`` (buffer kernel - stride) and the bookkeeping of
``spectrostream_encoder_config`` inserts ``Delay(1)`` before the two time-strided levels
(encoder_5, encoder_6). Net effect: call k returns the codes of audio frame k - 1; the first
call's codes are invalid and upstream masks them to 0 (``latency_frames`` = 1).

Graph, per call (N = 2 groups = audio channels up to encoder_5, then 1)::

    audio[1,1920,2] -> per channel: past 480 ++ 1920 samples -> 4 frames x 960 -> Hann
      -> DFT matmul -> [2 audio ch, re/im, 4 frames, 480 bins]
      -> base_conv_first (7x7) -> encoder_0..4 (freq /2,/2,/3,/2,/2) -> Delay(1)
      -> encoder_5 (time /2, freq /2) -> concat groups as channels -> Delay(1)
      -> encoder_6 (time /2) -> bottleneck -> flatten [1, 5*C]
      -> output_convs (1x1 residual) -> embedding [1,F] -> 12-level RVQ argmin -> codes[1,12]

Each residual unit: body ELU -> conv3x3 -> ELU -> conv(resample kernel, strides); shortcut
AveragePool(strides) when strided, then a 1x1 conv when the channel count changes. Invalid
(start-up) frames are zeroed where upstream's layers call ``mask_invalid``; a capped call
counter in the state tells the graph which frames those are.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import onnx
from onnx import TensorProto

from bridge import io_names

from .graph import GraphBuilder
from .spectrostream_config import (
    QUANTIZER_KEY,
    CodecConfig,
    ConvSpec,
    check_tensors,
    codec_tensor_shapes,
    synth_codec_tensors,
)
from .spectrostream_ops import conv_weight, elu, matmul_1x1, same_freq_padding

__all__ = [
    "EMBEDDINGS",
    "ENCODER_PREFIX",
    "build_codec_encoder",
    "codec_encoder_manifest_entry",
    "encoder_layout",
    "encoder_tensor_shapes",
    "synth_spectrostream_encoder_tensors",
]

logger = logging.getLogger(__name__)

# Key prefix of upstream's resources/spectrostream/encoder.safetensors.
ENCODER_PREFIX = "params/encoder/"
# Optional diagnostic output: the pre-quantization embedding [1, num_features].
EMBEDDINGS = "embeddings"
STEP = "codec_encoder.step"
STFT_STATE = "codec_encoder.stft"


@dataclasses.dataclass(frozen=True)
class EncoderBlock:
    """One residual unit of the encoder (``encoder_<i>`` or ``bottleneck``).

    body: ELU -> conv for each of ``convs``; shortcut: AveragePool(``pool``) if given, then the
    1x1 ``shortcut`` conv if given. ``delay`` frames of upstream's Delay layer come first.
    """

    name: str
    grouped: bool
    delay: int
    convs: tuple[ConvSpec, ...]
    pool: tuple[int, int] | None
    shortcut: ConvSpec | None


@dataclasses.dataclass(frozen=True)
class EncoderLayout:
    stft_latency: int                     # STFT output latency (frames) upstream starts from
    base_conv: ConvSpec
    blocks: tuple[EncoderBlock, ...]
    output_bins: int
    output_channels: int
    output_convs: tuple[ConvSpec, ConvSpec, ConvSpec]  # conv1x1_last, conv1x1_b1, conv1x1_b2

    def all_convs(self) -> list[ConvSpec]:
        out = [self.base_conv]
        for b in self.blocks:
            out += list(b.convs)
            if b.shortcut is not None:
                out.append(b.shortcut)
        return out + list(self.output_convs)


def encoder_layout(cfg: CodecConfig) -> EncoderLayout:
    """Derive the encoder's blocks exactly as upstream's ``spectrostream_encoder_config``."""
    p = ENCODER_PREFIX
    num_blocks = len(cfg.ratios) + 1
    splits = cfg.channel_splits
    recombo = cfg.channel_recombo_block % num_blocks
    if recombo == num_blocks - 1:
        raise NotImplementedError("channel recombination after the last level is not supported")
    if cfg.stft_frame_length != cfg.stft_fft_length:
        raise NotImplementedError("STFT with fft_length != frame_length")
    stft_latency = (cfg.stft_frame_length - 1) // cfg.stft_frame_step
    depth = cfg.encoder_base_conv_depth
    ks = cfg.encoder_base_conv_size
    base = ConvSpec(p + "base_conv_first/conv", (ks, ks), cfg.num_channels // splits, depth)
    in_ch = out_ch = depth
    actual_in = depth
    bins = cfg.num_bins
    latency = stft_latency
    grouped = True
    blocks: list[EncoderBlock] = []
    for level, (strides, mult) in enumerate(zip(cfg.ratios, cfg.mults)):
        if level == recombo:
            grouped = False
            in_ch *= splits
            actual_in = in_ch
        out_ch = int(np.round(out_ch * mult))
        if bins % strides[1]:
            raise ValueError(f"encoder_{level}: {bins} bins not divisible by {strides[1]}")
        bins //= strides[1]
        st = strides[0]
        delay = -latency % st
        latency = (latency + delay) // st  # semicausal convs add no latency of their own
        kt, kf = max(3, 2 * strides[0]), max(3, 2 * strides[1])
        name = f"encoder_{level}"
        convs = (ConvSpec(p + f"{name}/conv2d_3x3/conv", (3, 3), actual_in, in_ch),
                 ConvSpec(p + f"{name}/conv2d_{kt}x{kf}_a/conv", (kt, kf), in_ch, out_ch,
                          tuple(strides)))
        pool = tuple(strides) if tuple(strides) != (1, 1) else None
        shortcut = None
        if in_ch != out_ch:
            shortcut = ConvSpec(p + f"{name}/shortcut_layer/conv1x1/conv", (1, 1), actual_in,
                                out_ch)
        blocks.append(EncoderBlock(name, grouped, delay, convs, pool, shortcut))
        in_ch = actual_in = out_ch
    blocks.append(EncoderBlock(
        "bottleneck", False, 0,
        (ConvSpec(p + "bottleneck/conv2d_3x3/conv", (3, 3), in_ch, in_ch),
         ConvSpec(p + "bottleneck/conv2d_3x3_a/conv", (3, 3), in_ch, out_ch)),
        None, None))
    flat = bins * out_ch
    f = cfg.num_features
    output_convs = (
        ConvSpec(p + "output_convs/conv1x1_last/conv", (1, 1), flat, f),
        ConvSpec(p + "output_convs/shortcut_layer/conv1x1_b1/conv", (1, 1), flat, flat),
        ConvSpec(p + "output_convs/shortcut_layer/conv1x1_b2/conv", (1, 1), flat, f),
    )
    return EncoderLayout(stft_latency, base, tuple(blocks), bins, out_ch, output_convs)


def encoder_tensor_shapes(cfg: CodecConfig, include_quantizer: bool = True
                          ) -> dict[str, tuple[int, ...]]:
    """Checkpoint key -> shape of every tensor the codec encoder reads.

    Encoder keys are ``params/encoder/...`` (upstream's ``encoder.safetensors``); the RVQ
    codebooks are the decoder's ``params/soundstream/quantizer/embedding``.
    """
    return codec_tensor_shapes(cfg, encoder_layout(cfg).all_convs(), include_quantizer)


def synth_spectrostream_encoder_tensors(cfg: CodecConfig, rng: np.random.Generator,
                                        include_quantizer: bool = True
                                        ) -> dict[str, np.ndarray]:
    """Random, non-degenerate encoder tensors in upstream's key layout (see above).

    Kernels are fan-in scaled and biases small but non-zero. Pass ``include_quantizer=False``
    to pair them with a decoder checkpoint's codebooks (``synth_spectrostream_tensors``).
    """
    convs = encoder_layout(cfg).all_convs()
    stds = [1.0 / math.sqrt(s.kernel[0] * s.kernel[1] * s.in_channels) for s in convs]
    return synth_codec_tensors(cfg, convs, stds, rng, include_quantizer)


def codec_encoder_manifest_entry(cfg: CodecConfig) -> dict:
    """What the runtime needs to know about ``codec_encoder.onnx``."""
    latency = _output_invalid_frames(cfg)
    return {
        "encoder": io_names.CODEC_ENCODER + ".onnx",
        "sample_rate": cfg.sample_rate,
        "audio_channels": cfg.audio_channels,
        "samples_per_frame": cfg.samples_per_frame,
        "codes_per_frame": cfg.rvq_truncation_level,
        "codebook_size": cfg.num_embeddings,
        # Call k returns the codes of the audio given to call k - latency_frames; the first
        # latency_frames calls return codes 0 (masked as upstream). Feed latency_frames more
        # frames (e.g. silence) after the audio to flush its last codes.
        "latency_frames": latency,
        "latency_samples": latency * cfg.samples_per_frame,
    }


def _output_invalid_frames(cfg: CodecConfig) -> int:
    layout = encoder_layout(cfg)
    n = layout.stft_latency            # STFT frames that touch the initial zero padding
    for block in layout.blocks:
        n = math.ceil((n + block.delay) / block.convs[-1].strides[0])
    return n


class _Stream:
    """Step-wise bookkeeping for one tensor: NCHW shape and upstream's invalid-frame count.

    ``invalid`` = number of leading frames (since the stream start) upstream marks invalid.
    """

    def __init__(self, value: str, shape: tuple[int, int, int, int], invalid: int) -> None:
        self.value, self.shape, self.invalid = value, shape, invalid


class _EncoderGraph:
    """Builds the encoder graph; one method per upstream layer kind."""

    def __init__(self, b: GraphBuilder, weights: dict[str, np.ndarray], step_cap: int) -> None:
        self.b = b
        self.w = weights
        step = b.state(STEP, np.float32, (1,))
        # Calls seen so far, capped (masking only concerns the first few calls).
        b.set_present(STEP, b.op("Min", [b.op("Add", [step, b.const([1.0], np.float32)]),
                                          b.const([float(step_cap)], np.float32)]))
        self.step = step

    def mask_invalid(self, s: _Stream) -> str:
        """Zero the frames upstream marks invalid (only ever within the first calls)."""
        if s.invalid <= 0:
            return s.value
        b = self.b
        t = s.shape[2]
        first = b.op("Mul", [self.step, b.const([float(t)], np.float32)])
        idx = b.op("Add", [first, b.const(np.arange(t, dtype=np.float32).reshape(1, 1, t, 1),
                                          np.float32)])
        valid = b.op("Cast", [b.op("GreaterOrEqual", [idx, b.const([float(s.invalid)],
                                                                     np.float32)])],
                     to=TensorProto.FLOAT)
        return b.op("Mul", [s.value, valid])

    def conv(self, s: _Stream, spec: ConvSpec, masked: bool = True) -> _Stream:
        """Semicausal (causal for stride 1) Conv2D, step-wise: past kt-st frames ++ x."""
        with self.b.scope(spec.key.split("/")[-2]):      # the layer: conv2d_3x3, conv1x1...
            return self._conv(s, spec, masked)

    def _conv(self, s: _Stream, spec: ConvSpec, masked: bool) -> _Stream:
        b = self.b
        n, c, t, f = s.shape
        kt, kf = spec.kernel
        st, sf = spec.strides
        if t % st:
            raise ValueError(f"{spec.key}: {t} frames per call not divisible by stride {st}")
        x = self.mask_invalid(s) if (masked and kt > 1) else s.value
        w, bias = conv_weight(b, spec.key, self.w, transpose=False)
        buf = max(kt - st, 0)
        if buf:
            name = "codec_encoder." + spec.key[len(ENCODER_PREFIX):-len("/conv")].replace("/", ".")
            past = b.state(name, np.float32, (n, c, buf, f))
            x = b.op("Concat", [past, x], axis=2)
            b.set_present(name, b.slice(x, [t], [t + buf], [2]))
        pf = same_freq_padding(kf, sf)
        y = b.op("Conv", [x, w, bias], kernel_shape=[kt, kf], strides=[st, sf],
                 pads=[0, pf[0], 0, pf[1]])
        f_out = (f + pf[0] + pf[1] - kf) // sf + 1
        return _Stream(y, (n, spec.out_channels, t // st, f_out), -(-s.invalid // st))

    def avg_pool(self, s: _Stream, strides: tuple[int, int]) -> _Stream:
        """AveragePooling2D(pool=strides, semicausal time, valid freq): stateless step-wise."""
        n, c, t, f = s.shape
        y = self.b.op("AveragePool", [self.mask_invalid(s)], kernel_shape=list(strides),
                      strides=list(strides))
        return _Stream(y, (n, c, t // strides[0], f // strides[1]), -(-s.invalid // strides[0]))

    def delay(self, s: _Stream, frames: int, name: str) -> _Stream:
        """Upstream's step-wise Delay: output = last ``frames`` of the previous call ++ x[:-frames]."""
        if not frames:
            return s
        b = self.b
        n, c, t, f = s.shape
        past = b.state(name, np.float32, (n, c, frames, f))
        x = b.op("Concat", [past, s.value], axis=2)
        b.set_present(name, b.slice(x, [t], [t + frames], [2]))
        return _Stream(b.slice(x, [0], [t], [2]), s.shape, s.invalid + frames)

    def elu(self, s: _Stream) -> _Stream:
        return _Stream(elu(self.b, s.value), s.shape, s.invalid)

    def block(self, s: _Stream, block: EncoderBlock) -> _Stream:
        with self.b.scope(block.name):
            return self._block(s, block)

    def _block(self, s: _Stream, block: EncoderBlock) -> _Stream:
        s = self.delay(s, block.delay, f"codec_encoder.{block.name}.delay")
        h = s
        for spec in block.convs:
            h = self.conv(self.elu(h), spec)
        sc = s
        if block.pool is not None:
            sc = self.avg_pool(sc, block.pool)
        if block.shortcut is not None:
            sc = self.conv(sc, block.shortcut)
        if sc.shape != h.shape:
            raise AssertionError(f"{block.name}: body {h.shape} vs shortcut {sc.shape}")
        return _Stream(self.b.op("Add", [h.value, sc.value]), h.shape, h.invalid)


def _stft_basis(frame_length: int, num_bins: int) -> np.ndarray:
    """[frame_length, 2*num_bins]: periodic-Hann-windowed real DFT, (re bins ++ im bins)."""
    n = np.arange(frame_length)
    k = np.arange(num_bins)
    theta = 2.0 * np.pi * np.outer(n, k) / frame_length
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / frame_length)
    basis = np.concatenate([np.cos(theta), -np.sin(theta)], axis=1) * window[:, None]
    return basis.astype(np.float32)


def _rvq_codes(b: GraphBuilder, x: str, cfg: CodecConfig, weights: dict[str, np.ndarray]
               ) -> str:
    """Residual VQ, as upstream's ``embeddings_to_codes`` (squared-distance argmin per level).

        d_i = |c|^2 - 2 r.c ;  k_i = argmin d_i ;  q = r + (c[k_i] - r) ;  r -= q
    """
    q = cfg.rvq_truncation_level
    table = np.asarray(weights[QUANTIZER_KEY], np.float32)[:q]
    codes = []
    r = x
    for i in range(q):
        c = table[i]
        ct = b.weight(f"{QUANTIZER_KEY}[{i}]^T", np.ascontiguousarray(c.T))
        norms = b.weight(f"{QUANTIZER_KEY}[{i}]|c|^2",
                              np.einsum("kd,kd->k", c, c).astype(np.float32)[None])
        dots = b.op("MatMul", [r, ct])                                       # [1, V]
        dist = b.op("Add", [b.op("Mul", [dots, b.const([-2.0], np.float32)]), norms])
        idx = b.op("ArgMin", [dist], axis=1, keepdims=0)                      # [1]
        codes.append(b.op("Unsqueeze", [idx, b.ints([1])]))
        quant = b.reshape(b.op("Gather", [ct, idx], axis=1), [1, cfg.num_features])  # [1, F]
        quant = b.op("Add", [r, b.op("Sub", [quant, r])])                     # straight-through
        r = b.op("Sub", [r, quant])
    return b.op("Concat", codes, axis=1)                                      # [1, Q] int64


def build_codec_encoder(weights: dict[str, np.ndarray], cfg: CodecConfig,
                        include_embeddings: bool = False) -> onnx.ModelProto:
    """Streaming SpectroStream encoder: ``audio`` float [1,1920,2] -> ``codes`` int64 [1,12].

    ``weights``: ``params/encoder/...`` (upstream's ``encoder.safetensors``) plus
    ``params/soundstream/quantizer/embedding``. All STFT, conv and delay state is explicit
    ``past.*``/``present.*`` I/O, zeros initially. ``include_embeddings`` adds the
    pre-quantization embedding as output ``embeddings`` [1, num_features] (diagnostics).
    """
    check_tensors(weights, encoder_tensor_shapes(cfg), "codec encoder")
    if cfg.rvq_truncation_level > cfg.num_quantizers:
        raise ValueError("rvq_truncation_level exceeds the checkpoint's num_quantizers")
    layout = encoder_layout(cfg)
    hop, flen = cfg.stft_frame_step, cfg.stft_frame_length
    spf = cfg.samples_per_frame
    if spf % hop or flen != 2 * hop:
        raise NotImplementedError("STFT framing assumes frame_length == 2 * frame_step")
    t = spf // hop
    g = cfg.audio_channels
    splits = cfg.channel_splits
    if splits != g:
        raise NotImplementedError("channel groups must equal audio channels")

    invalid_out = _output_invalid_frames(cfg)
    b = GraphBuilder("spectrostream_encoder")
    with b.scope(io_names.CODEC_ENCODER):
        enc = _EncoderGraph(b, weights, step_cap=invalid_out + max(3, layout.stft_latency + 2))
        audio = b.input(io_names.AUDIO, np.float32, [1, spf, g])

        # STFT (reverse_causal framing, step-wise: the previous call's last hop samples first).
        sig = b.reshape(b.op("Transpose", [audio], perm=[0, 2, 1]), [g, spf])
        past = b.state(STFT_STATE, np.float32, (g, hop))
        sig = b.op("Concat", [past, sig], axis=1)                              # [g, hop + spf]
        b.set_present(STFT_STATE, b.slice(sig, [spf], [spf + hop], [1]))
        blocks = b.reshape(sig, [g, t + 1, hop])
        frames = b.op("Concat", [b.slice(blocks, [0], [t], [1]), b.slice(blocks, [1], [t + 1], [1])],
                      axis=2)
        basis = b.weight("stft/windowed_rdft_basis", _stft_basis(flen, cfg.num_bins))
        spec = b.op("MatMul", [frames, basis])                                 # [g, T, 2*bins]
        spec = b.op("Transpose", [b.reshape(spec, [g, t, 2, cfg.num_bins])], perm=[0, 2, 1, 3])
        s = _Stream(spec, (g, 2, t, cfg.num_bins), layout.stft_latency)       # [g, re/im, T, bins]

        s = enc.conv(s, layout.base_conv)
        for block in layout.blocks:
            if not block.grouped and s.shape[0] != 1:
                n, c, tt, f = s.shape
                s = _Stream(b.reshape(s.value, [1, n * c, tt, f]), (1, n * c, tt, f), s.invalid)
            s = enc.block(s, block)
        n, c, tt, f = s.shape
        if (n, tt, c, f) != (1, 1, layout.output_channels, layout.output_bins):
            raise AssertionError(f"encoder body output {s.shape}")

        # Flatten [bins, C] (bins major, as upstream's [b, t, bins, C]) and the output convs.
        x = b.reshape(b.op("Transpose", [s.value], perm=[0, 2, 3, 1]), [1, f * c])
        last, b1, b2 = layout.output_convs
        body = matmul_1x1(b, x, last, weights)
        short = matmul_1x1(b, elu(b, matmul_1x1(b, elu(b, x), b1, weights)), b2, weights)
        emb = b.op("Add", [body, short])                                       # [1, F]

        codes = _rvq_codes(b, emb, cfg, weights)
        # Upstream masks the codes of invalid (start-up) frames to 0.
        started = b.op("Cast", [b.op("GreaterOrEqual", [enc.step, b.const([float(invalid_out)],
                                                                           np.float32)])],
                       to=TensorProto.INT64)
        codes = b.op("Mul", [codes, started])
    b.output(codes, io_names.CODES, np.int64, [1, cfg.rvq_truncation_level])
    if include_embeddings:
        b.output(emb, EMBEDDINGS, np.float32, [1, cfg.num_features])
    return b.build(f"SpectroStream streaming encoder ({cfg.name}); see onnx_export/"
                       "spectrostream_encoder.py")
