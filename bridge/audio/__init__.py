"""Audio out: the SPSC frame ring, resampling fallback, and the sinks that read it."""

from .ring import AudioRing

__all__ = ["AudioRing"]
