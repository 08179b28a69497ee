"""One style encoder for many streams: each stream's latest request is kept, none is lost.

:class:`bridge.style.service.StyleService` keeps one pending request (the
latest wins), which is right for one control state but would let one stream's
prompt overwrite another's. :class:`SharedStyle` keeps the latest request *per
stream* and resolves them in turn on one worker thread with the service's
encoder, caches and palette.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from .service import StyleService

log = logging.getLogger(__name__)

Slots = list[tuple[str, float]]
OnReady = Callable[[np.ndarray], None]


class _StreamResolver:
    """The :class:`bridge.control.style_protocol.StyleResolver` of one stream."""

    def __init__(self, shared: SharedStyle, key: int) -> None:
        self._shared = shared
        self._key = key

    def request(self, slots: Slots, on_ready: OnReady) -> None:
        self._shared.request(self._key, slots, on_ready)


class SharedStyle:
    """Resolves the prompt requests of several streams with one :class:`StyleService`."""

    def __init__(self, service: StyleService) -> None:
        self.service = service
        self._pending: OrderedDict[int, tuple[Slots, OnReady]] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self.completed = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="style-shared", daemon=True)
        self._thread.start()

    def for_stream(self, key: int) -> _StreamResolver:
        return _StreamResolver(self, key)

    def request(self, key: int, slots: Slots, on_ready: OnReady) -> None:
        """Queue stream ``key``'s latest slots (replacing its previous unstarted request)."""
        with self._cond:
            if self._closed:
                return
            self._pending.pop(key, None)
            self._pending[key] = (list(slots), on_ready)
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify()
        self._thread.join(timeout)
        self.service.close(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                key, (slots, on_ready) = self._pending.popitem(last=False)
            try:
                tokens = self.service.resolve(slots)
                on_ready(tokens)
                self.completed += 1
            except Exception:
                self.failed += 1
                log.exception("stream %d: style request %r failed; previous style holds", key, slots)
