"""A host of many streams without a transport: the batched engine, stream slots, clock and PCM ports.

``serve --streams`` puts OSC in front of one (:mod:`bridge.daemon.multi_app`);
a Ray replica hosts one per replica (:mod:`bridge.scale.ray_serve`). Controls
use the OSC address table's semantics (:func:`StreamHost.control`), so every
front end accepts exactly the same addresses and arguments.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.audio.pcm_stream import PcmStreamServer
from bridge.control import osc_api
from bridge.control.state import ControlState

from .app import FILL_TIMEOUT_S
from .stats import daemon_status
from .streams import MultiFrameLoop, StreamClock, StreamSlot, pcm_port

log = logging.getLogger(__name__)

MAX_STREAMS = 64


@dataclass
class HostOptions:
    """What a stream host is made of."""

    model: Path | str
    streams: int
    open_streams: int = 0
    provider: str = "auto"
    threads: int | None = None
    num_cfgs: int = 2
    buffer_frames: int = 4
    pcm_base: int | None = None  # stream i on pcm_base + i; 0: a free port per stream; None: no PCM
    pcm_host: str = "127.0.0.1"
    preset: str = "default"
    palette: Path | None = None
    overlap: bool | None = None  # codec one frame behind on its own thread; None: when the model needs it
    ws_port: int | None = None  # every stream's PCM also on ws://pcm_host:ws_port/stream/<id>; 0: a free port


class _NoQueries:
    """The server hooks of controls that arrive without a transport (queries are not per stream)."""

    def __getattr__(self, name: str):
        raise ValueError("not a per-stream control")


class StreamHost:
    """Up to ``opts.streams`` streams from one batched engine, each on its own PCM port."""

    def __init__(self, opts: HostOptions) -> None:
        if not 1 <= opts.streams <= MAX_STREAMS:
            raise ValueError(f"--streams must be 1..{MAX_STREAMS}, got {opts.streams}")
        if not 0 <= opts.open_streams <= opts.streams:
            raise ValueError(f"--open-streams must be 0..{opts.streams} (the --streams count), "
                             f"got {opts.open_streams}")
        self.opts = opts
        self.engine = None
        self.slots: list[StreamSlot] = []
        self.loop: MultiFrameLoop | None = None
        self.clock: StreamClock | None = None
        self._style = None
        self._ctx: dict[int, osc_api.Context] = {}
        self.ws = None  # bridge.web.pcm_ws.PcmWebSockets with --ws-port
        self.started_at = time.monotonic()

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Load the engine, open the first ``open_streams`` streams, fill them, start the clock."""
        from bridge import presets
        from bridge.multistream import MultiStreamEngine

        opts = self.opts
        if opts.ws_port is not None:  # binds now: a busy port fails before the model loads
            from bridge.web.pcm_ws import PcmWebSockets

            self.ws = PcmWebSockets(opts.streams, opts.pcm_host, opts.ws_port)
        self.engine = MultiStreamEngine(opts.model, opts.streams, provider=opts.provider, threads=opts.threads,
                                        num_cfgs=opts.num_cfgs)
        log.info("model %s on %s%s: batched engine for up to %d streams, %d guidance rows each", opts.model,
                 self.engine.provider, " (SYNTHETIC)" if self.engine.is_synthetic else "", opts.streams,
                 self.engine.rows)
        preset = presets.get(opts.preset)
        self._style = self._shared_style(preset)
        for sid in range(opts.streams):
            control = ControlState()
            preset.apply(control)
            if self._style is not None:
                control.set_style_resolver(self._style.for_stream(sid))
            pcm = None
            if opts.pcm_base is not None:
                port = 0 if opts.pcm_base == 0 else pcm_port(opts.pcm_base, sid)
                pcm = PcmStreamServer(port, host=opts.pcm_host)
            self.slots.append(StreamSlot(sid, control, pcm, ws=None if self.ws is None else self.ws.taps[sid]))
            self._ctx[sid] = osc_api.Context(control, None, _NoQueries())
        self.loop = MultiFrameLoop(self.engine, self.slots, buffer_frames=opts.buffer_frames, overlap=opts.overlap)
        for sid in range(opts.open_streams):
            self.loop.request_open(sid, None)
        self.loop.start()
        if not self.loop.wait_filled(opts.open_streams, FILL_TIMEOUT_S):
            raise RuntimeError(self.loop.failed or f"the model could not fill {opts.buffer_frames} frames of "
                               f"{opts.open_streams} streams in {FILL_TIMEOUT_S:.0f} s (far slower than real "
                               "time; try fewer --streams, --provider cuda or a smaller model)")
        self.loop.preroll = True
        self.clock = StreamClock(self.slots)
        self.clock.start()
        if self.ws is not None:
            self.ws.start()

    def _shared_style(self, preset):
        from bridge.style.service import service_for_package
        from bridge.style.shared import SharedStyle

        service = service_for_package(self.engine.package.root, self.opts.palette, use_mapper=preset.use_mapper)
        return None if service is None else SharedStyle(service)

    def stop(self) -> None:
        """Stop the loop and the clock; close PCM ports and the style encoder. Idempotent."""
        if self.loop is not None:
            self.loop.stop()
        if self.clock is not None:
            self.clock.stop()
        for slot in self.slots:
            if slot.pcm is not None:
                slot.pcm.close()
        if self.ws is not None:
            self.ws.close()
        if self._style is not None:
            self._style.close()
            self._style = None

    @property
    def failed(self) -> str | None:
        return None if self.loop is None else self.loop.failed

    # -- sessions ------------------------------------------------------------------------
    def pcm_port(self, sid: int) -> int | None:
        pcm = self.slots[sid].pcm
        return None if pcm is None else pcm.port

    def check_id(self, sid: int) -> int:
        if not 0 <= sid < len(self.slots):
            raise ValueError(f"stream id must be 0..{len(self.slots) - 1}, got {sid}")
        return sid

    def open(self, seed: int | None = None, sid: int | None = None) -> tuple[int, int | None]:
        """Open a stream (``sid``, else the lowest closed one): (id, PCM port). RuntimeError when refused."""
        sid = self.loop.request_open(None if sid is None else self.check_id(sid), seed)
        return sid, self.pcm_port(sid)

    def close(self, sid: int) -> None:
        """Close a stream (RuntimeError if it is not open); the others play on."""
        self.loop.request_close(self.check_id(sid))

    def control(self, sid: int, address: str, args: list) -> None:
        """Apply one control of the OSC address table to stream ``sid`` (ValueError/LookupError if bad)."""
        osc_api.check_per_stream(address)
        osc_api.dispatch(self._ctx[self.check_id(sid)], address, list(args), ("", 0))

    # -- status --------------------------------------------------------------------------
    def stream_status(self, sid: int) -> dict:
        out = self.slots[self.check_id(sid)].status()
        if self.ws is not None:
            out["ws"] = self.ws.status(sid)
        return out

    def status(self) -> dict:
        """Totals (plain JSON types), with the flat keys of /status/reply."""
        out = daemon_status(self.started_at, self.opts.model, self.engine,
                            None if self.loop is None else self.loop.status(), frames_key="steps")
        if self.clock is not None:
            out["clock_late_blocks"] = self.clock.late_blocks
        if self.ws is not None:
            out["ws"] = {"port": self.ws.port, "refused": self.ws.refused}
        return out
