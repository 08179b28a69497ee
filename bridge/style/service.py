"""Background style service: weighted prompt slots -> 12 style tokens, off the frame loop.

Implements ``bridge.control.style_protocol.StyleResolver``. ``request`` only
queues; one worker thread embeds (text prompts cached, palette styles looked
up), blends (weighted mean of embeddings), tokenizes and calls ``on_ready``.
Requests that arrive while one is being worked on coalesce: only the newest
waiting one runs. The previous style holds until ``on_ready`` fires; a failing
request is logged and dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Self

import numpy as np

from bridge.style.palette import blend

log = logging.getLogger(__name__)

PALETTE_PREFIX = "palette:"

Slots = list[tuple[str, float]]
OnReady = Callable[[np.ndarray], None]


class StyleService:
    """Resolves prompt slots with a style encoder in a worker thread."""

    def __init__(self, encoder, palette: dict[str, np.ndarray] | None = None,
                 cache_size: int = 256, use_mapper: bool = False):
        self.encoder = encoder
        # Text prompts go through the text->audio mapper (upstream's live engine does).
        self.use_mapper = bool(use_mapper)
        self.palette = dict(palette or {})
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cond = threading.Condition()
        self._pending: tuple[Slots, OnReady] | None = None
        self._busy = False
        self._closed = False
        self.completed = 0
        self.failed = 0
        self._logged: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="style-service", daemon=True)
        self._thread.start()

    # -- StyleResolver ------------------------------------------------------
    def request(self, slots: list[tuple[str, float]], on_ready: OnReady) -> None:
        """Queue ``slots`` for resolution; returns at once (never raises on bad input)."""
        with self._cond:
            if self._closed:
                log.warning("style request after close() ignored")
                return
            self._pending = (list(slots), on_ready)
            self._cond.notify()

    def check_prompt(self, prompt: str) -> None:
        """ValueError for a prompt that can never resolve (an unknown palette style)."""
        if prompt.startswith(PALETTE_PREFIX):
            name = prompt[len(PALETTE_PREFIX):].strip()
            if name not in self.palette:
                known = ", ".join(sorted(self.palette)[:20]) or "none loaded; start with --palette FILE.npz"
                raise ValueError(f"unknown palette style {name!r} (known: {known})")

    # -- lifecycle ----------------------------------------------------------
    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (the request being worked on finishes first)."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify()
        self._thread.join(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or running (for tests and `styles` CLI)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- work ---------------------------------------------------------------
    def embedding(self, prompt: str) -> np.ndarray:
        """Embedding of one prompt: palette lookup or (cached) text embedding."""
        if prompt.startswith(PALETTE_PREFIX):
            name = prompt[len(PALETTE_PREFIX):]
            if name not in self.palette:
                known = ", ".join(sorted(self.palette)) or "none loaded"
                raise KeyError(f"unknown palette style {name!r} (known: {known})")
            return self.palette[name]
        key = prompt.strip().lower()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        emb = self.encoder.embed_text(prompt)
        if self.use_mapper:
            emb = self.encoder.map_text_embedding(emb)
        self._cache[key] = emb
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return emb

    def resolve(self, slots: Slots) -> np.ndarray:
        """Blend and tokenize (runs in the caller's thread)."""
        active = [(p, float(w)) for p, w in slots if float(w) > 0]
        if not active:
            raise ValueError("no active style slot (all weights <= 0)")
        embs = [self.embedding(p) for p, _ in active]
        return self.encoder.tokenize(blend(embs, [w for _, w in active]))

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                slots, on_ready = self._pending
                self._pending = None
                self._busy = True
            try:
                tokens = self.resolve(slots)
            except Exception as exc:
                self.failed += 1
                reason = f"{type(exc).__name__}: {exc}"[:200]
                if reason not in self._logged:  # one line per distinct reason, not a traceback per blend
                    self._logged.add(reason)
                    log.error("style request failed (%s); previous style holds", reason)
            else:
                try:
                    on_ready(tokens)
                    self.completed += 1
                except Exception:
                    self.failed += 1
                    log.exception("style on_ready callback failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def service_for_package(package_root, palette_path=None, use_mapper: bool = False) -> StyleService | None:
    """A StyleService on a package's MusicCoCa graphs, or None (reason logged) when it has none.

    ``use_mapper``: map text prompts with the package's text->audio mapper when it has one.
    """
    from bridge.style.encoder import StyleEncoder
    from bridge.style.palette import load_palette

    palette = load_palette(palette_path) if palette_path is not None else {}
    try:
        encoder = StyleEncoder.from_package(package_root)
    except FileNotFoundError as exc:
        log.warning("text style prompts unavailable: %s; /style/tokens still works", exc)
        return None
    mapped = use_mapper and encoder.has_mapper
    if use_mapper and not mapped:
        log.info("no text->audio mapper in %s: text prompts are used unmapped", encoder.dir)
    log.info("style prompts: MusicCoCa from %s%s, %d palette styles%s", encoder.dir,
             " (SYNTHETIC)" if encoder.synthetic else "", len(palette),
             ", text->audio mapper on" if mapped else "")
    return StyleService(encoder, palette, use_mapper=mapped)
