"""SpectroStream codec configuration and checkpoint tensor layout.

Mirrors upstream ``stft_spectrostream_40ms_generic_48khz_stereo_config`` (magenta-rt 2.0.3,
``magenta_rt/jax/spectrostream.py``): a causal 2-D conv stack over a 960/480 STFT grid of 480
bins x 4 channels (re/im of two audio channels). ``decoder_layout`` lists the decoder's blocks
in execution order with the exact checkpoint key of every tensor, so the graph builder, the
synthetic-checkpoint maker and the weight validator all share one description.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DECODER_PREFIX = "params/soundstream/decoder/"
QUANTIZER_KEY = "params/soundstream/quantizer/embedding"


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Hyper-parameters of one SpectroStream codec (names follow upstream's config)."""

    name: str
    decoder_base_conv_depth: int
    encoder_base_conv_depth: int
    num_features: int          # RVQ embedding dim == bottleneck features
    num_quantizers: int        # codebooks stored in the checkpoint
    rvq_truncation_level: int = 12  # codebooks used per frame
    num_embeddings: int = 1024
    sample_rate: int = 48000
    stft_frame_length: int = 960
    stft_frame_step: int = 480
    stft_fft_length: int = 960
    num_bins: int = 480
    num_channels: int = 4      # re/im x 2 audio channels
    ratios: tuple[tuple[int, int], ...] = ((1, 2), (1, 2), (1, 3), (1, 2), (1, 2), (2, 2), (2, 1))
    mults: tuple[int, ...] = (2, 1, 2, 1, 1, 2, 1)
    channel_splits: int = 2
    channel_recombo_block: int = -2
    decoder_base_conv_size: int = 7
    encoder_base_conv_size: int = 7
    decoder_lookahead: int = 1

    @property
    def total_time_stride(self) -> int:
        return math.prod(r[0] for r in self.ratios)

    @property
    def total_freq_stride(self) -> int:
        return math.prod(r[1] for r in self.ratios)

    @property
    def samples_per_frame(self) -> int:
        return self.total_time_stride * self.stft_frame_step

    @property
    def audio_channels(self) -> int:
        return self.num_channels // 2

    def upstream_overrides(self) -> dict:
        """Fields the oracle replaces in upstream's 40 ms 48 kHz stereo config."""
        return {
            "decoder_base_conv_depth": self.decoder_base_conv_depth,
            "encoder_base_conv_depth": self.encoder_base_conv_depth,
            "num_features": self.num_features,
            "num_quantizers": self.num_quantizers,
            "rvq_truncation_level": self.rvq_truncation_level,
        }


_CONFIGS = {
    "full": CodecConfig("full", decoder_base_conv_depth=64, encoder_base_conv_depth=32,
                        num_features=256, num_quantizers=64),
    # Same architecture with 16x fewer channels: builds and runs in well under a second.
    "tiny": CodecConfig("tiny", decoder_base_conv_depth=4, encoder_base_conv_depth=2,
                        num_features=16, num_quantizers=12),
}


def codec_config(size: str) -> CodecConfig:
    """Return the codec config ``'full'`` (mrt2_small/mrt2_base) or ``'tiny'`` (tests)."""
    try:
        return _CONFIGS[size]
    except KeyError:
        raise ValueError(f"unknown codec size {size!r}: expected one of {sorted(_CONFIGS)}") from None


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """One convolution: checkpoint key prefix (``.../conv``) and its geometry."""

    key: str
    kernel: tuple[int, int]       # (time, freq)
    in_channels: int              # per group
    out_channels: int
    strides: tuple[int, int] = (1, 1)
    transpose: bool = False

    @property
    def kernel_key(self) -> str:
        return self.key + "/kernel"

    @property
    def bias_key(self) -> str:
        return self.key + "/bias"

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (*self.kernel, self.in_channels, self.out_channels)


@dataclasses.dataclass(frozen=True)
class DecoderBlock:
    """A residual unit of the decoder conv stack (all on the grouped or ungrouped path).

    body: ELU -> conv for each entry (``up`` first when present, then ``convs``).
    shortcut: optional 1x1 conv, then nearest upsampling by ``up.strides``.
    """

    name: str
    grouped: bool                 # runs inside ParallelChannels (shared weights per group)
    up: ConvSpec | None           # transposed resampling conv (None for the input unit)
    convs: tuple[ConvSpec, ...]
    shortcut: ConvSpec | None


@dataclasses.dataclass(frozen=True)
class DecoderLayout:
    input_bins: int
    proj_channels: int            # channels after the input projection's reshape
    input_convs: tuple[ConvSpec, ConvSpec, ConvSpec]  # conv1x1_first, conv1x1_b1, conv1x1_b2
    blocks: tuple[DecoderBlock, ...]
    output_conv: ConvSpec

    def all_convs(self) -> list[ConvSpec]:
        out = list(self.input_convs)
        for b in self.blocks:
            out += [c for c in (b.up, *b.convs, b.shortcut) if c is not None]
        out.append(self.output_conv)
        return out


def decoder_layout(cfg: CodecConfig) -> DecoderLayout:
    """Derive the decoder's blocks exactly as upstream's ``spectrostream_decoder_config``."""
    p = DECODER_PREFIX
    total_freq = cfg.total_freq_stride
    input_bins = cfg.num_bins // total_freq
    if input_bins * total_freq != cfg.num_bins:
        raise ValueError("frequency ratios do not divide num_bins")
    num_blocks = len(cfg.ratios) + 1
    splits = cfg.channel_splits
    recombo = cfg.channel_recombo_block % num_blocks
    if recombo == num_blocks - 1:
        raise NotImplementedError("channel_recombo_block before the input unit is not supported")
    output_channels = cfg.decoder_base_conv_depth * math.prod(cfg.mults)
    proj = input_bins * output_channels
    f = cfg.num_features
    input_convs = (
        ConvSpec(p + "input_layer/conv1x1_first/conv", (1, 1), f, proj),
        ConvSpec(p + "input_layer/shortcut_layer/conv1x1_b1/conv", (1, 1), f, proj),
        ConvSpec(p + "input_layer/shortcut_layer/conv1x1_b2/conv", (1, 1), proj, proj),
    )
    c = output_channels
    blocks = [DecoderBlock(
        "input_layers_residual_unit", False, None,
        (ConvSpec(p + "input_layers_residual_unit/conv2d_3x3_a/conv", (3, 3), c, c),
         ConvSpec(p + "input_layers_residual_unit/conv2d_3x3/conv", (3, 3), c, c)),
        None,
    )]
    input_channels = output_channels   # upstream's bookkeeping variable (pre-split count)
    actual_in = output_channels        # channels one group actually sees
    grouped = False
    for level, (strides, mult) in enumerate(zip(cfg.ratios[::-1], cfg.mults[::-1])):
        output_channels = int(np.round(output_channels / mult))
        recombines_here = recombo == num_blocks - 2 - level
        if recombines_here:
            output_channels *= splits
        name = f"decoder_{level}"
        kt, kf = max(3, 2 * strides[0]), max(3, 2 * strides[1])
        if tuple(strides) == (1, 1):
            raise NotImplementedError("unit-stride decoder levels are not used by SpectroStream")
        up = ConvSpec(p + f"{name}/conv2dtranspose_{kt}x{kf}/conv", (kt, kf), actual_in,
                      output_channels, tuple(strides), transpose=True)
        conv = ConvSpec(p + f"{name}/conv2d_3x3/conv", (3, 3), output_channels, output_channels)
        shortcut = None
        if input_channels != output_channels:
            shortcut = ConvSpec(p + f"{name}/shortcut_layer/conv1x1/conv", (1, 1), actual_in,
                                output_channels)
        blocks.append(DecoderBlock(name, grouped, up, (conv,), shortcut))
        input_channels = output_channels
        actual_in = output_channels
        if recombines_here:
            grouped = True
            output_channels //= splits
            actual_in = output_channels
    out_ch = cfg.num_channels // splits
    output_conv = ConvSpec(p + "output_layer/base_conv_last/conv",
                           (cfg.decoder_base_conv_size,) * 2, actual_in, out_ch)
    return DecoderLayout(input_bins, c, input_convs, tuple(blocks), output_conv)


def decoder_tensor_shapes(cfg: CodecConfig) -> dict[str, tuple[int, ...]]:
    """Checkpoint key -> shape of every tensor the codec decoder reads."""
    return codec_tensor_shapes(cfg, decoder_layout(cfg).all_convs())


def codec_tensor_shapes(cfg: CodecConfig, convs: list[ConvSpec], include_quantizer: bool = True
                        ) -> dict[str, tuple[int, ...]]:
    """Checkpoint key -> shape: the RVQ codebooks (if ``include_quantizer``), then each conv's
    kernel and bias."""
    shapes: dict[str, tuple[int, ...]] = {}
    if include_quantizer:
        shapes[QUANTIZER_KEY] = (cfg.num_quantizers, cfg.num_embeddings, cfg.num_features)
    for spec in convs:
        shapes[spec.kernel_key] = spec.kernel_shape
        shapes[spec.bias_key] = (spec.out_channels,)
    return shapes


def check_tensors(weights: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]],
                  what: str) -> None:
    """Raise ValueError naming the first missing or mis-shaped tensor."""
    missing = [k for k in shapes if k not in weights]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{what}: checkpoint tensor {missing[0]!r} is missing{more}")
    for key, shape in shapes.items():
        got = tuple(np.shape(weights[key]))
        if got != tuple(shape):
            raise ValueError(
                f"{what}: checkpoint tensor {key!r} has shape {got}, expected {tuple(shape)}")


def _fan_in(shape: tuple[int, ...], strides: tuple[int, int]) -> float:
    if len(shape) == 4:
        return shape[0] * shape[1] * shape[2] / (strides[0] * strides[1])
    return float(shape[-1])


def synth_codec_tensors(cfg: CodecConfig, convs: list[ConvSpec], stds: list[float],
                        rng: np.random.Generator, include_quantizer: bool = True
                        ) -> dict[str, np.ndarray]:
    """Random RVQ codebooks (if ``include_quantizer``), then per conv a kernel of std ``stds[i]``
    and a small but non-zero bias, in upstream's key layout."""
    out: dict[str, np.ndarray] = {}
    if include_quantizer:
        out[QUANTIZER_KEY] = (rng.standard_normal(
            (cfg.num_quantizers, cfg.num_embeddings, cfg.num_features)) * 0.3).astype(np.float32)
    for spec, std in zip(convs, stds, strict=True):
        out[spec.kernel_key] = (rng.standard_normal(spec.kernel_shape) * std).astype(np.float32)
        out[spec.bias_key] = (rng.standard_normal(spec.out_channels) * 0.02).astype(np.float32)
    return out


def synth_spectrostream_tensors(cfg: CodecConfig, rng: np.random.Generator
                                ) -> dict[str, np.ndarray]:
    """Random, non-degenerate codec-decoder tensors in upstream's ``params/soundstream`` layout.

    Kernels are fan-in scaled and biases small but non-zero, so a random decoder's output stays
    in a sane audio range (|x| well below 1 for random codes).
    """
    layout = decoder_layout(cfg)
    convs = layout.all_convs()
    stds = [(3.0 if spec is layout.output_conv else 0.7)
            / math.sqrt(_fan_in(spec.kernel_shape, spec.strides)) for spec in convs]
    return synth_codec_tensors(cfg, convs, stds, rng)
