"""The `serve --streams N` daemon: wires the batched engine, stream slots, clock, PCM ports and OSC.

Start-up: load the batched engine, one control state and PCM server per
stream id, open the first ``--open-streams`` streams and fill their rings,
then start the real-time clock and the OSC server. Shutdown (SIGINT/SIGTERM
or a dead loop): OSC, loop, clock, PCM servers, style encoder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bridge.audio.pcm_stream import PcmStreamServer
from bridge.control.state import ControlState

from .app import FILL_TIMEOUT_S, ServeOptions
from .streams import MultiFrameLoop, StreamClock, StreamSlot, describe_latency, pcm_port

log = logging.getLogger(__name__)

MAX_STREAMS = 64


class MultiDaemon:
    """N streams served from one batched engine. ``run(stop)`` blocks until ``stop`` or a failure."""

    def __init__(self, opts: ServeOptions, streams: int, open_streams: int,
                 make_engine: Callable[[int], object], make_control: Callable[[object, int], ControlState]) -> None:
        if not 1 <= streams <= MAX_STREAMS:
            raise ValueError(f"--streams must be 1..{MAX_STREAMS}, got {streams}")
        if not 0 <= open_streams <= streams:
            raise ValueError(f"--open-streams must be 0..{streams} (the --streams count), got {open_streams}")
        self.opts = opts
        self.streams = streams
        self.open_streams = open_streams
        self.make_engine = make_engine
        self.make_control = make_control
        self.engine = None
        self.slots: list[StreamSlot] = []
        self.loop: MultiFrameLoop | None = None
        self.clock: StreamClock | None = None
        self.osc = None
        self.started_at = time.monotonic()
        self.exit_reason = ""
        self.closers: list[Callable[[], None]] = []  # e.g. the shared style encoder

    def status(self) -> dict:
        """Totals for /status (plain JSON types)."""
        out: dict = {
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "model": str(self.opts.model),
            "synthetic": bool(getattr(self.engine, "is_synthetic", False)),
            "provider": getattr(self.engine, "provider", None),
        }
        if self.loop is not None:
            loop = self.loop.status()
            out.update(loop)
            out.update(frame=loop["steps"], step_ms_p50=loop["step_ms"]["p50"], step_ms_p99=loop["step_ms"]["p99"],
                       ring_fill=loop["ring_fill_ms"])
        if self.clock is not None:
            out["clock_late_blocks"] = self.clock.late_blocks
        return out

    def start(self) -> None:
        opts = self.opts
        self.engine = self.make_engine(self.streams)
        for sid in range(self.streams):
            control = self.make_control(self.engine, sid)
            port = None if opts.pcm_port is None else pcm_port(opts.pcm_port, sid)
            self.slots.append(StreamSlot(sid, control, PcmStreamServer(port) if port is not None else None))
        self.loop = MultiFrameLoop(self.engine, self.slots, buffer_frames=opts.buffer_frames)
        for sid in range(self.open_streams):
            self.loop.request_open(sid, None)
        self.loop.start()
        if not self.loop.wait_filled(self.open_streams, FILL_TIMEOUT_S):
            raise RuntimeError(self.loop.failed or f"the model could not fill {opts.buffer_frames} frames of "
                               f"{self.open_streams} streams in {FILL_TIMEOUT_S:.0f} s (far slower than real "
                               "time; try fewer --streams, --provider cuda or a smaller model)")
        self.loop.preroll = True
        self.clock = StreamClock(self.slots)
        self.clock.start()
        from bridge.control.stream_osc import StreamOscServer

        self.osc = StreamOscServer(
            self.loop, self.status, lambda sid: self.slots[sid].status(),
            lambda sid: None if opts.pcm_port is None else pcm_port(opts.pcm_port, sid),
            host=opts.osc_host, port=opts.osc_port)
        self.osc.start()
        log.info("serving %d streams (%d open) from one batched engine, %d guidance rows each; PCM on "
                 "tcp://127.0.0.1:%s+id; control latency %s", self.streams, self.open_streams, self.engine.rows,
                 opts.pcm_port, describe_latency(opts.buffer_frames))

    def run(self, stop: threading.Event) -> int:
        try:
            self.start()
            code = self._serve(stop)
        finally:
            self.shutdown()
        return code

    def _serve(self, stop: threading.Event) -> int:
        last, next_warn = 0, 0.0
        while not stop.wait(0.2):
            if self.loop.failed:
                self.exit_reason = self.loop.failed
                log.error("%s; stopping", self.loop.failed)
                return 1
            underruns = sum(s.underruns()[0] for s in self.slots)
            if underruns != last and time.monotonic() >= next_warn:
                log.warning("audio underruns: %d so far over all streams (step p99 %s ms for %d open): the "
                            "model is not keeping up; try fewer streams or a larger --buffer-frames",
                            underruns, self.loop.step_times.percentiles()["p99"],
                            sum(s.open for s in self.slots))
                last, next_warn = underruns, time.monotonic() + 10.0
        self.exit_reason = "stopped"
        return 0

    def shutdown(self) -> None:
        """Stop OSC, the loop and the clock; close PCM ports and the style encoder. Idempotent."""
        if self.osc is not None:
            self.osc.stop()
            self.osc = None
        if self.loop is not None:
            self.loop.stop()
        if self.clock is not None:
            self.clock.stop()
        for slot in self.slots:
            if slot.pcm is not None:
                slot.pcm.close()
        for close in self.closers:
            close()
        self.closers = []
        if self.loop is not None:
            st = self.loop.status()
            log.info("stopped after %d batched steps (%d frames over all streams): %d underruns, step p50 %s / "
                     "p99 %s ms", st["steps"], st["frames"], st["underruns"], st["step_ms"]["p50"],
                     st["step_ms"]["p99"])
