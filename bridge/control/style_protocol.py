"""The seam between control state and the style service (issue 5).

`ControlState` turns its six weighted prompt slots into style tokens through
an optional :class:`StyleResolver`. The style service implements it; the
control layer never imports that service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

PALETTE_PREFIX = "palette:"


@runtime_checkable
class StyleResolver(Protocol):
    """Resolves weighted prompts to 12 MusicCoCa style tokens, off the frame loop.

    ``slots`` lists the active prompt slots as ``(prompt, weight)`` pairs with
    weight > 0, in slot order. A prompt is either free text or
    ``"palette:NAME"`` (a named, precomputed style). The resolver blends them
    (weighted mean of embeddings, then tokenize) and calls ``on_ready`` with an
    integer array of 12 tokens (0..1023), from any thread, once the tokens are
    ready. Until then the previous style holds. ``request`` must return
    quickly (queue the work); it may call ``on_ready`` synchronously. If it
    cannot resolve (unknown palette, encoder failure) it logs and never calls
    ``on_ready`` for that request.
    """

    def request(
        self,
        slots: list[tuple[str, float]],
        on_ready: Callable[[np.ndarray], None],
    ) -> None:
        """Start resolving ``slots``; call ``on_ready(tokens)`` when done."""
        ...
