"""The OSC server of `serve --streams N`: /stream/<id>/... to each stream, /status with totals.

Same transport, validation, counting and logging as :class:`OscServer`; only
the dispatch differs (addresses and docs: ``osc_api.STREAM_ROUTES``). Opening
and closing are requests to the frame loop, answered at once to the sender
with ``/stream/opened``, ``/stream/refused`` or ``/stream/closed``.
"""

from __future__ import annotations

import json
import logging

from bridge.control import osc_api
from bridge.control.osc_server import OscServer, _build
from bridge.control.state import ControlState

log = logging.getLogger(__name__)


class StreamOscServer(OscServer):
    """OSC for many streams. ``host`` is a :class:`bridge.daemon.stream_host.StreamHost` (started)."""

    def __init__(self, host, host_addr: str = "127.0.0.1", port: int = 9000, status_interval: float = 1.0) -> None:
        super().__init__(ControlState(), None, host.status, host=host_addr, port=port,
                         status_interval=status_interval)
        self._host = host

    # -- dispatch ---------------------------------------------------------------------
    def _dispatch(self, address: str, args: list, sender: tuple[str, int]) -> None:
        if address.startswith(osc_api.STREAM_PREFIX):
            osc_api.dispatch_stream(osc_api.Context(self._state, None, self), address, args, sender)
            return
        found = osc_api.match(address)
        if found is not None and found[0].section in osc_api.PER_STREAM_SECTIONS:
            raise ValueError(f"this daemon serves {len(self._host.slots)} streams: name one, "
                             f"e.g. /stream/0{address}")
        osc_api.dispatch(self._ctx, address, args, sender)

    # -- StreamHooks --------------------------------------------------------------------
    def open_stream(self, sender: tuple[str, int], sid: int | None, seed: int | None) -> None:
        try:
            sid, port = self._host.open(seed, sid)
        except RuntimeError as exc:
            self._send(_build("/stream/refused", [str(exc)]), sender)
            raise ValueError(f"refused: {exc}") from None
        self._send(_build("/stream/opened", [sid, -1 if port is None else port]), sender)

    def close_stream(self, sender: tuple[str, int], sid: int) -> None:
        try:
            self._host.close(sid)
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
        self._send(_build("/stream/closed", [sid]), sender)

    def reply_stream_status(self, sender: tuple[str, int], sid: int, port: int | None) -> None:
        s = self._host.stream_status(sid)
        p = self._host.loop.step_times.percentiles()
        payload = {"stream": s, "control": self._host.slots[sid].control.status()}
        args = [int(s["frames"]), float(p["p50"] or -1.0), float(p["p99"] or -1.0), int(s["underruns"]),
                float(s["ring_fill_ms"]), json.dumps(payload, separators=(",", ":"), default=str)]
        self._send(_build(f"/stream/{sid}/status/reply", args), (sender[0], port or sender[1]))

    def forward(self, sender: tuple[str, int], sid: int, address: str, raw_args: list) -> None:
        self._host.control(sid, address, raw_args)

    # -- /status: totals -----------------------------------------------------------------
    def status_payload(self) -> dict:
        out = super().status_payload()
        out.pop("control", None)
        out["streams"] = [self._host.stream_status(s.sid) for s in self._host.slots]
        return out
