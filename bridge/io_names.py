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

# Batch layout of the depthformer graphs. ``rows`` = streams x rows_per_stream:
# each stream owns 1 + num_cfgs consecutive rows [positive, style-negative,
# notes-negative]; every row has its own streaming state. Sampling happens once
# per stream (on the guided logits) and the token is fed back to all its rows.
ROWS = "rows"
STREAMS = "streams"
ROWS_PER_STREAM = "rows_per_stream"

# encoder graph
CONDITIONING = "conditioning"          # int64 [rows, 144] raw values (see bridge.conditioning)
ENCODED = "encoded"                    # float [rows, encoder_dims]

# temporal graph
PREV_TOKENS = "prev_tokens"            # int64 [rows, 12] model tokens of the previous frame (SOS = 0)
TEMPORAL_OUT = "temporal_out"          # float [rows, temporal_dims]

# depth graph
TEMPERATURE = "temperature"            # float [streams]
TOP_K = "top_k"                        # int64 [streams]
GUMBEL = "gumbel"                      # float [streams, 12, 1024] noise for Gumbel-max sampling
GUIDANCE = "guidance"                  # float [streams, rows_per_stream] logit guidance scale of each
                                       #   row (column 0, the positive row, is ignored)
FORCED_TOKENS = "forced_tokens"        # int64 [streams, 12] model tokens to force (teacher forcing)
FORCE_MASK = "force_mask"              # bool [streams, 12] where true, forced token is used instead of sample
TOKENS = "tokens"                      # int64 [streams, 12] model tokens (6 + k*1024 + code)
LOGITS = "logits"                      # float [streams, 12, 1024] guided soft-capped logits of each
                                       #   level's valid slice (what was sampled from)

# codec graphs
CODES = "codes"                        # int64 [1, 12] codec codes 0..1023
AUDIO = "audio"                        # float [1, 1920, 2] waveform of one frame


# Model metadata key: comma-separated state names whose present.* output may share the
# past.* input's buffer (ring states updated in place by ScatterElements).
INPLACE_STATE_KEY = "mrt.inplace_state"


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
