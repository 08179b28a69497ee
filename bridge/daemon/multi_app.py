"""The `serve --streams N` daemon: a :class:`StreamHost` with the OSC server in front.

Start-up: the host loads the batched engine, makes one control state and PCM
server per stream id, opens and fills the first ``--open-streams`` streams and
starts the real-time clock; then the OSC server starts. Shutdown
(SIGINT/SIGTERM or a dead loop): OSC, then the host.
"""

from __future__ import annotations

import logging

from bridge.pipeline import real_time_fixes
from bridge.stop_flag import StopFlag

from .stats import GrowthWarning, underrun_advice
from .stream_host import HostOptions, StreamHost
from .streams import describe_latency

log = logging.getLogger(__name__)


class MultiDaemon:
    """N streams served over OSC + PCM. ``run(stop)`` blocks until ``stop`` or a failure."""

    def __init__(self, host_opts: HostOptions, osc_host: str = "127.0.0.1", osc_port: int = 9000) -> None:
        self.host = StreamHost(host_opts)
        self.osc_host = osc_host
        self.osc_port = osc_port
        self.osc = None
        self.exit_reason = ""

    def start(self) -> None:
        from bridge.control.stream_osc import StreamOscServer

        host = self.host
        host.start()
        self.osc = StreamOscServer(host, self.osc_host, self.osc_port)
        self.osc.start()
        opts = host.opts
        log.info("serving %d streams (%d open) from one batched engine, %d guidance rows each; PCM on "
                 "tcp://%s:%s+id; control latency %s", opts.streams, opts.open_streams, host.engine.rows,
                 opts.pcm_host, opts.pcm_base, describe_latency(opts.buffer_frames, int(bool(host.loop.overlap))))

    def run(self, stop: StopFlag) -> int:
        try:
            self.start()
            code = self._serve(stop)
        finally:
            self.shutdown()
        return code

    def _serve(self, stop: StopFlag) -> int:
        host = self.host
        underrun_warning = GrowthWarning()
        while not stop.wait(0.2):
            if host.failed:
                self.exit_reason = host.failed
                log.error("%s; stopping", host.failed)
                return 1
            underruns = sum(s.underruns()[0] for s in host.slots)
            if underrun_warning.due(underruns):
                log.warning("audio underruns: %d so far over all streams (%d open): %s", underruns,
                            sum(s.open for s in host.slots), underrun_advice(
                                host.loop.step_times.percentiles(), host.loop.buffer_frames,
                                real_time_fixes(host.engine, first="fewer streams, "),
                                "try fewer streams or a larger --buffer-frames"))
        self.exit_reason = "stopped"
        return 0

    def shutdown(self) -> None:
        """Stop OSC, then the host. Idempotent."""
        if self.osc is not None:
            self.osc.stop()
            self.osc = None
        # The open streams' least ring fill while frames were still coming: stopping closes them.
        low_water_ms = None if self.host.loop is None else self.host.loop.status()["ring_low_water_ms"]
        self.host.stop()
        if self.host.loop is not None:
            st = self.host.loop.status()
            log.info("stopped after %d batched steps (%d frames over all streams): %d underruns, step p50 %s / "
                     "p99 %s ms, ring low water %s ms", st["steps"], st["frames"], st["underruns"], st["step_ms"]["p50"],
                     st["step_ms"]["p99"], low_water_ms)
