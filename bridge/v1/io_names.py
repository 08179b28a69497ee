"""Graph I/O names of a v1 package, shared by the exporter (onnx_export/v1) and the runtime.

State follows :mod:`bridge.io_names`: every ``past.<name>`` input has a ``present.<name>``
output and starts at zeros. The batch dimension is ``rows`` (``bridge.io_names.ROWS``):
row 0 is the prompt with its style tokens, row 1 (when guidance is on) the same prompt with
the style tokens masked; sampling happens once, on the guided logits, and the token is fed
back to both rows.
"""

from __future__ import annotations

from bridge.io_names import GUIDANCE, GUMBEL, PREV_TOKENS, ROWS, TEMPERATURE, TEMPORAL_OUT, TOKENS, TOP_K

__all__ = [
    "CHUNK_LOGITS", "ENCODER_TOKENS", "GUIDANCE", "GUMBEL", "PREV_TOKENS", "ROWS", "TEMPERATURE",
    "TEMPORAL_OUT", "TOKENS", "TOP_K", "cross_key", "cross_value",
]

# encoder graph: int64 [rows, 1006] LM tokens (250 frames x 4 levels, then 6 style tokens)
ENCODER_TOKENS = "encoder_tokens"
# depth graph (export option, for tests): float [1, 16, vocab] guided logits of every level
CHUNK_LOGITS = "logits"


def cross_key(layer: int) -> str:
    """Encoder graph output / temporal graph input: float [rows, heads, 1006, head_dim], the
    cross-attention keys of temporal layer ``layer`` (fixed for the whole chunk)."""
    return f"cross_k.{layer}"


def cross_value(layer: int) -> str:
    return f"cross_v.{layer}"
