"""Control in: OSC server, MIDI input, game-state mapping, and the control state they write."""

from bridge.control.state import ControlSnapshot, ControlState
from bridge.control.style_protocol import StyleResolver

__all__ = ["ControlSnapshot", "ControlState", "StyleResolver"]
