"""The live daemon behind `mrt-bridge serve`: frame loop, wiring of inputs and sinks, shutdown."""

from .app import Daemon, ServeOptions
from .frame_loop import FrameLoop

__all__ = ["Daemon", "FrameLoop", "ServeOptions"]
