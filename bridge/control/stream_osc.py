"""The OSC server of `serve --streams N`: /stream/<id>/... to each stream, /status with totals.

Same transport, validation, counting and logging as :class:`OscServer`; only
the dispatch differs (addresses and docs: ``osc_api.STREAM_ROUTES``). Opening
and closing are requests to the frame loop, answered at once to the sender
with ``/stream/opened``, ``/stream/refused`` or ``/stream/closed``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from bridge.control import osc_api
from bridge.control.osc_server import OscServer, _build
from bridge.control.state import ControlState

log = logging.getLogger(__name__)


class StreamOscServer(OscServer):
    """OSC for many streams. ``loop`` is a :class:`bridge.daemon.streams.MultiFrameLoop`."""

    def __init__(self, loop, status_provider: Callable[[], dict], stream_status: Callable[[int], dict],
                 pcm_port_of: Callable[[int], int | None], host: str = "127.0.0.1", port: int = 9000,
                 status_interval: float = 1.0) -> None:
        super().__init__(ControlState(), None, status_provider, host=host, port=port,
                         status_interval=status_interval)
        self._loop = loop
        self._stream_status = stream_status
        self._pcm_port_of = pcm_port_of
        self._stream_ctx = {s.sid: osc_api.Context(s.control, None, self) for s in loop.slots}

    # -- dispatch ---------------------------------------------------------------------
    def _dispatch(self, address: str, args: list, sender: tuple[str, int]) -> None:
        if address.startswith(osc_api.STREAM_PREFIX):
            osc_api.dispatch_stream(osc_api.Context(self._state, None, self), address, args, sender)
            return
        found = osc_api.match(address)
        if found is not None and found[0].section in osc_api.PER_STREAM_SECTIONS:
            raise ValueError(f"this daemon serves {len(self._loop.slots)} streams: name one, "
                             f"e.g. /stream/0{address}")
        osc_api.dispatch(self._ctx, address, args, sender)

    def _sid(self, sid: int) -> int:
        if not 0 <= sid < len(self._loop.slots):
            raise ValueError(f"stream id must be 0..{len(self._loop.slots) - 1}, got {sid}")
        return sid

    # -- StreamHooks --------------------------------------------------------------------
    def open_stream(self, sender: tuple[str, int], sid: int | None, seed: int | None) -> None:
        try:
            sid = self._loop.request_open(None if sid is None else self._sid(sid), seed)
        except RuntimeError as exc:
            self._send(_build("/stream/refused", [str(exc)]), sender)
            raise ValueError(f"refused: {exc}") from None
        port = self._pcm_port_of(sid)
        self._send(_build("/stream/opened", [sid, -1 if port is None else port]), sender)

    def close_stream(self, sender: tuple[str, int], sid: int) -> None:
        try:
            self._loop.request_close(self._sid(sid))
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
        self._send(_build("/stream/closed", [sid]), sender)

    def reply_stream_status(self, sender: tuple[str, int], sid: int, port: int | None) -> None:
        sid = self._sid(sid)
        slot = self._loop.slots[sid]
        s = self._stream_status(sid)
        payload = {"stream": s, "control": slot.control.status()}
        args = [int(s["frames"]), *self._step_ms(), int(s["underruns"]), float(s["ring_fill_ms"]),
                json.dumps(payload, separators=(",", ":"), default=str)]
        self._send(_build(f"/stream/{sid}/status/reply", args), (sender[0], port or sender[1]))

    def forward(self, sender: tuple[str, int], sid: int, address: str, raw_args: list) -> None:
        sid = self._sid(sid)
        osc_api.check_per_stream(address)
        osc_api.dispatch(self._stream_ctx[sid], address, raw_args, sender)

    def _step_ms(self) -> list[float]:
        p = self._loop.step_times.percentiles()
        return [float(p["p50"] or -1.0), float(p["p99"] or -1.0)]

    # -- /status: totals -----------------------------------------------------------------
    def status_payload(self) -> dict:
        out = super().status_payload()
        out.pop("control", None)
        out["streams"] = [self._stream_status(s.sid) for s in self._loop.slots]
        return out
