"""Graph I/O names shared by the exporter (onnx_export) and the runtime (bridge).

Every piece of streaming state is a graph input ``past.<name>`` with a
matching output ``present.<name>`` of the same shape and dtype; the runtime
feeds each ``present.*`` back as the next call's ``past.*``. Initial state is
all zeros, so a graph must treat zeros as "nothing seen yet" (it keeps its own
step counter as state for that).
"""

from __future__ import annotations

PAST = "past."
PRESENT = "present."

# Graph file names inside a model package.
ENCODER = "encoder"
TEMPORAL = "temporal"
DEPTH = "depth"
CODEC_DECODER = "codec_decoder"
CODEC_ENCODER = "codec_encoder"

# encoder graph
CONDITIONING = "conditioning"          # int64 [1, 144] raw values (see bridge.conditioning)
ENCODED = "encoded"                    # float [1, encoder_dims]

# temporal graph
PREV_TOKENS = "prev_tokens"            # int64 [1, 12] model tokens of the previous frame (SOS = 0)
TEMPORAL_OUT = "temporal_out"          # float [1, temporal_dims]

# depth graph
TEMPERATURE = "temperature"            # float [1]
TOP_K = "top_k"                        # int64 [1]
GUMBEL = "gumbel"                      # float [12, 1024] noise for Gumbel-max sampling
FORCED_TOKENS = "forced_tokens"        # int64 [12] model tokens to force (teacher forcing)
FORCE_MASK = "force_mask"              # bool [12] where true, forced token is used instead of sample
TOKENS = "tokens"                      # int64 [12] model tokens (6 + k*1024 + code)
LOGITS = "logits"                      # float [12, 1024] soft-capped logits of each level's valid slice

# codec graphs
CODES = "codes"                        # int64 [1, 12] codec codes 0..1023
AUDIO = "audio"                        # float [1, 1920, 2] waveform of one frame


def past(name: str) -> str:
    return PAST + name


def present(name: str) -> str:
    return PRESENT + name


def state_name(io_name: str) -> str | None:
    """Return ``X`` for ``past.X``/``present.X``, else None."""
    for prefix in (PAST, PRESENT):
        if io_name.startswith(prefix):
            return io_name[len(prefix):]
    return None
