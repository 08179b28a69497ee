"""`--audio jack`: a JACK client ``mrt-bridge`` with output ports ``out_L``/``out_R``.

The process callback copies from the ring into a buffer preallocated for
the server's block size, then into the port buffers; it never allocates
audio buffers, logs, locks or waits. xrun and shutdown callbacks only set
counters/flags that the daemon reads. If the server does not run at 48 kHz
the frame loop resamples before the ring (see ``samplerate``).
"""

from __future__ import annotations

import logging

import numpy as np

from ..ring import AudioRing
from .base import Sink, SinkUnavailable

log = logging.getLogger(__name__)

CLIENT_NAME = "mrt-bridge"
PORT_NAMES = ("out_L", "out_R")


class JackSink(Sink):
    """Plays the ring through a JACK server that is already running."""

    name = "jack"

    def __init__(self, ring: AudioRing, client_name: str = CLIENT_NAME, autoconnect: bool = True) -> None:
        super().__init__(ring)
        self.client_name = client_name
        self.autoconnect = autoconnect
        self.client = None
        self._ports: list = []
        self._scratch = np.zeros((0, 2), np.float32)
        self.xruns = 0
        self.shutdown_reason: str | None = None

    def open(self) -> None:
        try:
            import jack
        except OSError as exc:  # libjack missing
            raise SinkUnavailable(f"JACK library not found ({exc}); install jackd2/libjack") from exc
        try:
            self.client = jack.Client(self.client_name, no_start_server=True)
        except jack.JackOpenError as exc:
            raise SinkUnavailable(
                f"no JACK server running (could not open client {self.client_name!r}: {exc}); "
                "start one, e.g. `jackd -d alsa` or `jackd -d dummy -r 48000`"
            ) from exc
        if self.client.name != self.client_name:
            log.warning("JACK client name %r was taken; registered as %r", self.client_name, self.client.name)
        self.samplerate = int(self.client.samplerate)
        if self.samplerate != 48_000:
            log.warning("JACK server runs at %d Hz, not 48000 Hz: resampling 48000 -> %d Hz (linear)",
                        self.samplerate, self.samplerate)
        self._ports = [self.client.outports.register(n) for n in PORT_NAMES]
        self._scratch = np.zeros((max(self.client.blocksize, 1), 2), np.float32)
        self.client.set_process_callback(self._process)
        self.client.set_blocksize_callback(self._blocksize)
        self.client.set_xrun_callback(self._xrun)
        self.client.set_shutdown_callback(self._shutdown)
        log.info("JACK client %r: %d Hz, block %d frames", self.client.name, self.samplerate,
                 self.client.blocksize)

    # -- JACK callbacks (flags and copies only) ----------------------------------
    def _process(self, frames: int) -> None:
        scratch = self._scratch
        if scratch.shape[0] < frames:  # cannot happen after _blocksize; stay silent, count it
            for port in self._ports:
                port.get_array().fill(0.0)
            self.ring.underruns += 1
            return
        view = scratch[:frames]
        self.ring.read_into(view)
        self._ports[0].get_array()[:] = view[:, 0]
        self._ports[1].get_array()[:] = view[:, 1]

    def _blocksize(self, blocksize: int) -> None:
        # Not the real-time thread: JACK calls this while process is not running.
        if blocksize > self._scratch.shape[0]:
            self._scratch = np.zeros((blocksize, 2), np.float32)

    def _xrun(self, delay_usecs: float) -> None:
        self.xruns += 1

    def _shutdown(self, status, reason: str) -> None:
        self.shutdown_reason = str(reason)
        self.failed = f"JACK server shut down: {reason}"

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        self.client.activate()
        if not self.autoconnect:
            return
        targets = self.client.get_ports(is_audio=True, is_input=True, is_physical=True)
        for port, target in zip(self._ports, targets):
            try:
                self.client.connect(port, target)
            except Exception as exc:  # noqa: BLE001 - jack raises JackError subclasses
                log.warning("could not connect %s -> %s: %s", port.name, target.name, exc)
        if targets:
            log.info("connected %s to %s", [p.name for p in self._ports], [t.name for t in targets[:2]])

    def stop(self) -> None:
        if self.client is None:
            return
        try:
            if self.shutdown_reason is None:
                self.client.deactivate()
            self.client.close()
        except Exception as exc:  # noqa: BLE001 - closing after a server death may fail
            log.debug("closing JACK client: %s", exc)
        self.client = None

    def latency_frames(self) -> int:
        return self._scratch.shape[0]

    def status(self) -> dict:
        return {**super().status(), "xruns": self.xruns,
                "client": self.client.name if self.client is not None else None}
