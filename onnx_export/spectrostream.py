"""SpectroStream codec graphs: streaming decoder (codes -> 40 ms of stereo audio).

Matches upstream's streaming path in ``MagentaRT2Sampler`` (magenta-rt 2.0.3):
``quantizer.codes_to_embeddings_layer`` then ``embeddings_to_waveform_layer`` (decoder conv
stack + inverse STFT), one ``step`` per frame. Upstream's ``decoder_lookahead=1`` is a
``Lookahead(4 STFT frames)`` that, in step mode, masks the first call's 4 STFT frames: the
first frame of audio is silence and frame k+1 carries the audio of codes k (latency 1 frame,
1920 samples). The graph reproduces that with a ``started`` flag in its state.

Decoder graph, per call (N = 1 before the channel recombination point, 2 after)::

    codes[1,12] -> Gather(RVQ tables) -> sum -> input_layer (1x1 convs, residual)
      -> reshape [1,C,1,5] -> input_layers_residual_unit -> decoder_0 (time x2)
      -> split channels into 2 groups (batch) -> decoder_1 (time x2) ... decoder_6
      -> output_layer (ELU, 7x7 conv) -> [2 audio ch, re/im, 4 frames, 480 bins]
      -> x started -> windowed IRFFT (matmul) -> overlap-add (hop 480) -> audio[1,1920,2]

CPU speed (ORT's NCHWc Conv is the fast path; 40 -> 25 ms per frame for the full codec, 2
threads, AVX2, parity unchanged at ~114 dB):

- each transposed conv is regular Convs over stacked phase kernels plus a sub-pixel shuffle
  (``streaming_conv_transpose_polyphase``; ORT's ConvTranspose is GEMM + col2im);
- the 3-tap (time) convs of the 4-row levels use Winograd F(4,3) along time (half the FLOPs);
- the shortcut's nearest upsampling is a ``Resize`` (Expand was 15x slower);
- the 2-output 7x7 output conv folds 4 bins into channels (``streaming_conv_space_to_depth``)
  so NCHWc does not pad its 2 outputs to 8.

Every streaming conv computes only the new rows; nothing is recomputed across calls.
"""

from __future__ import annotations

import numpy as np
import onnx

from bridge import io_names

from .graph import GraphBuilder
from .spectrostream_config import (
    QUANTIZER_KEY,
    CodecConfig,
    check_tensors,
    codec_config,
    decoder_layout,
    decoder_tensor_shapes,
    synth_spectrostream_tensors,
)
from .spectrostream_ops import (
    WINOGRAD_T_ROWS,
    elu,
    inverse_stft_basis,
    matmul_1x1,
    streaming_conv,
    streaming_conv_space_to_depth,
    streaming_conv_transpose_polyphase,
    streaming_conv_winograd,
    upsample_nearest,
)

__all__ = [
    "CodecConfig",
    "build_codec_decoder",
    "codec_config",
    "codec_manifest_entry",
    "decoder_tensor_shapes",
    "synth_spectrostream_tensors",
]

STARTED = "codec.started"
OLA = "codec.istft_overlap"
# Frequency bins folded into channels for the 2-output 7x7 conv (see streaming_conv_space_to_depth).
OUTPUT_CONV_PHASES = 4
# 3-tap (time) convs on the 4-row levels run as Winograd F(4,3) in time: half the FLOPs,
# ~125 dB per layer against the direct conv (see streaming_conv_winograd).
TIME_WINOGRAD = True


def codec_manifest_entry(cfg: CodecConfig) -> dict:
    """What the runtime needs to know about the codec graphs of a package."""
    return {
        "codec": cfg.name,
        "sample_rate": cfg.sample_rate,
        "audio_channels": cfg.audio_channels,
        "samples_per_frame": cfg.samples_per_frame,
        "codes_per_frame": cfg.rvq_truncation_level,
        "codebook_size": cfg.num_embeddings,
        # Audio of frame k's codes comes out of the decoder call for frame k + latency_frames;
        # the first latency_frames calls return silence (upstream's decoder lookahead).
        "latency_frames": cfg.decoder_lookahead,
        "latency_samples": cfg.decoder_lookahead * cfg.samples_per_frame,
        # Raw decoder output; upstream multiplies by this and clips to [-1, 1] (int16).
        "output_gain": 0.5,
        "decoder": io_names.CODEC_DECODER + ".onnx",
    }


def _embed_codes(b: GraphBuilder, codes: str, cfg: CodecConfig,
                 weights: dict[str, np.ndarray]) -> str:
    """codes [1,Q] (0..1023) -> sum over levels of codebook vectors -> [1, num_features]."""
    q, v = cfg.rvq_truncation_level, cfg.num_embeddings
    table = np.asarray(weights[QUANTIZER_KEY], np.float32)[:q].reshape(q * v, cfg.num_features)
    t = b.weight(f"{QUANTIZER_KEY}[:{q}]", table)
    idx = b.op("Add", [codes, b.const(np.arange(q)[None, :] * v, np.int64)])
    rows = b.op("Gather", [t, idx], axis=0)                       # [1, Q, F]
    return b.op("ReduceSum", [rows, b.ints([1])], keepdims=0)    # [1, F]


def _layer(spec) -> str:
    """A conv's scope name: its layer in the checkpoint key (``conv2d_3x3``, ``conv1x1``...)."""
    return spec.key.split("/")[-2]


def build_codec_decoder(weights: dict[str, np.ndarray], cfg: CodecConfig, *,
                        winograd: bool = TIME_WINOGRAD) -> onnx.ModelProto:
    """Streaming SpectroStream decoder: ``codes`` int64 [1,12] -> ``audio`` float [1,1920,2].

    ``weights`` are keyed by checkpoint names (``params/soundstream/...``). The output is the
    raw decoder waveform (before upstream's 0.5 gain); all conv and overlap-add state is
    explicit ``past.*``/``present.*`` I/O, zeros initially. Nodes are named by scope
    (``codec_decoder/decoder_3/conv2d_3x3/Conv_123``). ``winograd=False`` builds every
    3-tap conv directly (the int8 variant's input: Winograd's transforms do not survive
    8-bit activations).
    """
    check_tensors(weights, decoder_tensor_shapes(cfg), "codec decoder")
    b = GraphBuilder("spectrostream_decoder")
    with b.scope(io_names.CODEC_DECODER):
        _decoder_body(b, weights, cfg, winograd)
    return b.build(f"SpectroStream streaming decoder ({cfg.name}); see onnx_export/"
                   "spectrostream.py")


def _decoder_body(b: GraphBuilder, weights: dict[str, np.ndarray], cfg: CodecConfig,
                  winograd: bool) -> None:
    layout = decoder_layout(cfg)
    codes = b.input(io_names.CODES, np.int64, [1, cfg.rvq_truncation_level])

    with b.scope("input_layer"):
        x = _embed_codes(b, codes, cfg, weights)
        first, b1, b2 = layout.input_convs
        body = matmul_1x1(b, x, first, weights)
        short = matmul_1x1(b, elu(b, matmul_1x1(b, x, b1, weights)), b2, weights)
        x = b.op("Add", [body, short])                                 # [1, bins*C]
        c, f = layout.proj_channels, layout.input_bins
        x = b.op("Transpose", [b.reshape(x, [1, f, c])], perm=[0, 2, 1])
        x = b.reshape(x, [1, c, 1, f])
    shape = (1, c, 1, f)

    splits = cfg.channel_splits
    grouped = False
    for block in layout.blocks:
        with b.scope(block.name):
            x, shape, grouped = _decoder_block(b, block, x, shape, grouped, splits, weights,
                                               winograd)
    if not grouped:
        raise NotImplementedError("decoder without channel recombination")
    with b.scope("output_layer"):
        x, shape = streaming_conv_space_to_depth(b, elu(b, x), layout.output_conv.key, weights,
                                                 shape, OUTPUT_CONV_PHASES)
    g, reim, t, bins = shape                        # [2 audio ch, re/im, T, bins]
    if (g * reim, bins) != (cfg.num_channels, cfg.num_bins):
        raise AssertionError(f"decoder output {shape}")
    with b.scope("istft"):
        audio = _inverse_stft(b, x, shape, cfg)
    b.output(audio, io_names.AUDIO, np.float32, [1, cfg.samples_per_frame,
                                                            cfg.audio_channels])


def _decoder_block(b: GraphBuilder, block, x: str, shape: tuple, grouped: bool, splits: int,
                   weights: dict[str, np.ndarray], winograd: bool) -> tuple[str, tuple, bool]:
    """One residual unit (body ``up`` + ``convs``, shortcut 1x1 + nearest upsampling)."""
    if block.grouped and not grouped:
        _n, ch, t, fr = shape
        shape = (splits, ch // splits, t, fr)
        x = b.reshape(x, list(shape))
        grouped = True
    h, hshape = x, shape
    # Winograd up-conv feeding a Winograd conv: hand over time-major ([N, T, C, F]).
    tm = (winograd and block.up is not None and len(block.convs) > 0
          and block.up.strides[0] == 1 and block.up.kernel[0] == 3
          and block.convs[0].kernel[0] == 3 and shape[2] == WINOGRAD_T_ROWS)
    if block.up is not None:
        with b.scope(_layer(block.up)):
            h, hshape = streaming_conv_transpose_polyphase(
                b, elu(b, h), block.up.key, weights, hshape, block.up.strides,
                winograd=winograd, time_major_out=tm)
    for i, conv in enumerate(block.convs):
        with b.scope(_layer(conv)):
            if winograd:
                h, hshape = streaming_conv_winograd(b, elu(b, h), conv.key, weights, hshape,
                                                    time_major_in=tm and i == 0)
            else:
                h, hshape = streaming_conv(b, elu(b, h), conv.key, weights, hshape)
    s, sshape = x, shape
    with b.scope("shortcut"):
        if block.shortcut is not None:
            s, sshape = streaming_conv(b, s, block.shortcut.key, weights, sshape)
        if block.up is not None:
            s, sshape = upsample_nearest(b, s, sshape, block.up.strides)
    if sshape != hshape:
        raise AssertionError(f"{block.name}: body {hshape} vs shortcut {sshape}")
    return b.op("Add", [h, s]), hshape, grouped


def _inverse_stft(b: GraphBuilder, x: str, shape: tuple, cfg: CodecConfig) -> str:
    """[2 audio ch, re/im, T, bins] -> windowed IRFFT -> overlap-add -> audio [1, T*hop, 2].

    Upstream's Lookahead masks the first call's frames (zeros before OLA)."""
    g, reim, t, bins = shape
    started = b.state(STARTED, np.float32, (1,))
    b.set_present(STARTED, b.const([1.0], np.float32))
    spec = b.reshape(b.op("Transpose", [x], perm=[0, 2, 1, 3]), [g, t, reim * bins])
    basis = b.weight("istft/windowed_irfft_basis", inverse_stft_basis(
        cfg.stft_frame_length, cfg.stft_frame_step, cfg.stft_fft_length, cfg.num_bins))
    frames = b.op("Mul", [b.op("MatMul", [spec, basis]), started])  # [g, T, frame_length]
    hop, flen = cfg.stft_frame_step, cfg.stft_frame_length
    if flen != 2 * hop:
        raise NotImplementedError("overlap-add assumes frame_length == 2 * frame_step")
    head = b.slice(frames, [0], [hop], [2])
    tail = b.slice(frames, [hop], [flen], [2])
    past = b.state(OLA, np.float32, (g, 1, hop))
    prev_tails = b.op("Concat", [past, b.slice(tail, [0], [t - 1], [1])], axis=1)
    b.set_present(OLA, b.slice(tail, [t - 1], [t], [1]))
    audio = b.op("Add", [head, prev_tails])                        # [g, T, hop]
    audio = b.op("Transpose", [b.reshape(audio, [g, t * hop])], perm=[1, 0])
    return b.reshape(audio, [1, t * hop, g])
