"""Make a Godot 3 TEST PORT of the Godot 4 example's networking scripts.

Debian ships a headless Godot 3 (`godot3-server`) but no Godot 4, so the
tests run the Godot 4 example's pure-networking classes (OSC encoder/decoder
and UDP, game-state publisher, PCM stream reader) under Godot 3 after this
purely mechanical rename of Godot 4 API names to their Godot 3 equivalents.
The logic under test is the example's own, line for line; nothing here is
part of the example. The scene and Node wrappers (AudioStreamGenerator
playback, UI) are Godot 4 only and are not run.

Usage: python port_to_godot3.py OUT_DIR   (writes OUT_DIR/port/*.gd)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ADDON = REPO / "examples" / "godot" / "addons" / "mrt_bridge"
# Scripts that use no Node/Audio API and so can run under a headless Godot 3.
PORTED = ("mrt_addresses.gd", "mrt_osc.gd", "mrt_publisher.gd", "mrt_pcm_stream.gd")

# (Godot 4 pattern, Godot 3 replacement), applied in order.
RULES: tuple[tuple[str, str], ...] = (
    (r"^class_name .*$", ""),  # preload() is used instead
    (r"\bextends RefCounted\b", "extends Reference"),
    (r"\bPackedByteArray\b", "PoolByteArray"),
    (r"\bPackedVector2Array\b", "PoolVector2Array"),
    (r"\bTYPE_FLOAT\b", "TYPE_REAL"),
    (r"\bTYPE_PACKED_BYTE_ARRAY\b", "TYPE_RAW_ARRAY"),
    (r"\.to_utf8_buffer\(\)", ".to_utf8()"),
    (r"\.is_empty\(\)", ".empty()"),
    (r"\bTime\.get_ticks_msec\(\)", "OS.get_ticks_msec()"),
    (r"\b_udp\.bind\(", "_udp.listen("),  # PacketPeerUDP.bind (4) = listen (3)
    (r"\b_udp\.get_local_port\(\)", "-1"),  # not in Godot 3.2
    (r"^(\s*)_tcp\.poll\(\)$", r"\1pass"),  # Godot 3 polls StreamPeerTCP itself
    (r"res://addons/mrt_bridge/", "res://port/"),
)


def port_source(text: str) -> str:
    """The Godot 3 version of one Godot 4 script."""
    for pattern, repl in RULES:
        text = re.sub(pattern, repl, text, flags=re.MULTILINE)
    return text


def main(out_dir: str) -> None:
    port = Path(out_dir) / "port"
    port.mkdir(parents=True, exist_ok=True)
    for name in PORTED:
        (port / name).write_text(port_source((ADDON / name).read_text()))


if __name__ == "__main__":
    main(sys.argv[1])
