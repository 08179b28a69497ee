"""`--audio jack`: a JACK client ``mrt-bridge`` with output ports ``out_L``/``out_R``.

The process callback copies from the ring into a buffer preallocated for
the server's block size, then into the port buffers; it never allocates
audio buffers, logs, locks or waits. xrun and shutdown callbacks only set
counters/flags that the daemon reads. If the server does not run at 48 kHz
the frame loop resamples before the ring (see ``samplerate``).

A missing server gives one line (libjack's own chatter is captured, see
bridge/quiet.py). If the server goes away while serving, the sink waits and
reconnects when it is back (``poll``, called by the daemon every 0.2 s):
same client name, ports, connections and MIDI input.

The same client carries the MIDI input port ``mrt-bridge:midi_in`` when MIDI
goes through JACK too (``open_midi_input``; one client, so JACK never renames
it): the process callback copies each incoming event's bytes into a
preallocated SPSC ring (``bridge.control.midi_in.MidiEventRing``) that a
normal thread drains.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from bridge.quiet import quiet_stderr

from ..ring import AudioRing
from .base import Sink, SinkUnavailable

log = logging.getLogger(__name__)

CLIENT_NAME = "mrt-bridge"
PORT_NAMES = ("out_L", "out_R")
INPUT_PORT_NAMES = ("in_L", "in_R")
RECONNECT_EVERY_S = 1.0


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
        self._midi_port = None  # an OwnMidiPort, set by open_midi_input
        self._midi_ring = None  # anything with push(bytes-like) -> bool that never blocks
        self._midi_active = False  # read by the process callback: push events to _midi_ring
        self._in_ports: list = []  # in_L/in_R, set by open_audio_input
        self._in_ring = None  # an AudioRing the process callback writes the input into
        self._in_scratch = np.zeros((0, 2), np.float32)
        self.input_dropped = 0  # input blocks dropped because _in_ring was full
        self._midi_port_name: str | None = None
        self._started = False
        self._next_retry = 0.0
        self.reconnects = 0
        # Called with every new client of a reconnect, before it is activated (e.g. latency callbacks).
        self.client_hooks: list = []

    def _open_client(self):
        try:
            import jack
        except OSError as exc:  # libjack missing
            raise SinkUnavailable(f"JACK library not found ({exc}); install jackd2/libjack", "jack") from exc
        with quiet_stderr("libjack"):
            try:
                return jack.Client(self.client_name, no_start_server=True)
            except jack.JackOpenError as exc:
                raise SinkUnavailable(
                    f"no JACK server running (could not open client {self.client_name!r}: {exc}); "
                    "start one, e.g. `jackd -d alsa` or `jackd -d dummy -r 48000`", "jack"
                ) from None

    def open(self) -> None:
        self.client = self._open_client()
        if self.client.name != self.client_name:
            log.warning("JACK client name %r was taken; registered as %r", self.client_name, self.client.name)
        self.samplerate = int(self.client.samplerate)
        if self.samplerate != 48_000:
            log.warning("JACK server runs at %d Hz, not 48000 Hz: resampling 48000 -> %d Hz (linear)",
                        self.samplerate, self.samplerate)
        self._register()

    def _register(self) -> None:
        """Ports and callbacks on a freshly opened client."""
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
        if self._midi_active:
            push = self._midi_ring.push
            for _offset, data in self._midi_port.incoming_midi_events():
                push(data)
        if self._in_ring is not None and self._in_scratch.shape[0] >= frames:
            inp = self._in_scratch[:frames]
            inp[:, 0] = self._in_ports[0].get_array()
            inp[:, 1] = self._in_ports[1].get_array()
            if not self._in_ring.write(inp):
                self.input_dropped += 1
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
        if self._in_ring is not None and blocksize > self._in_scratch.shape[0]:
            self._in_scratch = np.zeros((blocksize, 2), np.float32)

    def _xrun(self, delay_usecs: float) -> None:
        self.xruns += 1

    def _shutdown(self, status, reason: str) -> None:
        # Not fatal: poll() reconnects once the server is back (flags only here).
        self._midi_active = False
        self.shutdown_reason = str(reason) or "server gone"

    # -- server restarts ------------------------------------------------------------
    def poll(self) -> None:
        """Called by the daemon every 0.2 s: after a server shutdown, try to reconnect (every 1 s)."""
        if self.shutdown_reason is None or self.failed or time.monotonic() < self._next_retry:
            return
        if self._next_retry == 0.0:
            log.warning("JACK server shut down (%s); waiting for it to come back", self.shutdown_reason)
        self._next_retry = time.monotonic() + RECONNECT_EVERY_S
        old, self.client = self.client, None
        if old is not None:
            try:
                old.close()
            except Exception as exc:  # noqa: BLE001 - closing a zombie client may fail
                log.debug("closing the old JACK client: %s", exc)
        try:
            client = self._open_client()
        except SinkUnavailable:
            return
        if int(client.samplerate) != self.samplerate:
            client.close()
            self.failed = (f"JACK server came back at {client.samplerate} Hz instead of {self.samplerate} Hz; "
                           "restart mrt-bridge")
            return
        self.client = client
        self.shutdown_reason = None
        self._next_retry = 0.0
        self._register()
        if self._midi_port_name is not None:
            self._midi_port = self.client.midi_inports.register(self._midi_port_name)
            self._midi_active = self._midi_ring is not None
        if self._in_ports:  # live audio input: the same ports on the new client
            self._in_ports = [self.client.inports.register(n) for n in INPUT_PORT_NAMES]
        for hook in self.client_hooks:
            hook(self.client)
        if self._started:
            self.start()
        self.reconnects += 1
        log.warning("JACK server is back: reconnected as %r", self.client.name)

    # -- MIDI input on this client ----------------------------------------------------
    def open_midi_input(self, ring, port_name: str = "midi_in") -> str:
        """Register MIDI input ``port_name`` (once) and push its events into ``ring``; returns its name.

        ``ring.push(data)`` is called from the process callback for every event
        and must neither block nor allocate much (``MidiEventRing`` does not).
        Callable before or after ``start()``.
        """
        if self.client is None:
            raise RuntimeError("the JACK sink is not open")
        if self._midi_port is None:
            self._midi_port = self.client.midi_inports.register(port_name)
            self._midi_port_name = port_name
        elif self._midi_port.shortname != port_name:
            raise RuntimeError(f"this JACK client already has MIDI input {self._midi_port.name!r}")
        self._midi_active = False
        self._midi_ring = ring
        self._midi_active = True  # published last: the callback sees the ring before the flag
        return self._midi_port.name

    def open_audio_input(self, ring: AudioRing) -> list[str]:
        """Register ``in_L``/``in_R`` and copy what arrives there into ``ring`` (before ``start()``)."""
        if self.client is None:
            raise RuntimeError("the JACK sink is not open")
        self._in_ports = [self.client.inports.register(n) for n in INPUT_PORT_NAMES]
        self._in_scratch = np.zeros((max(self.client.blocksize, 1), 2), np.float32)
        self._in_ring = ring  # published last: the callback sees the ports and scratch first
        return [p.name for p in self._in_ports]

    def close_midi_input(self) -> None:
        """Stop pushing MIDI events; the port stays registered until the client closes."""
        self._midi_active = False

    def connect_midi_input(self, match: str) -> str:
        """Connect the first MIDI output port whose name contains ``match`` to our MIDI input.

        Needs an active client (after ``start()``). Returns the source's name;
        RuntimeError naming the available ports if none matches.
        """
        if self.client is None or self._midi_port is None:
            raise RuntimeError("open_midi_input() first")
        ports = [p.name for p in self.client.get_ports(is_midi=True, is_output=True)]
        matches = [p for p in ports if match in p]
        if not matches:
            raise RuntimeError(f"no MIDI port matching {match!r} (jack); available: {ports or 'none'}")
        if self._midi_port.name not in {p.name for p in self.client.get_all_connections(matches[0])}:
            self.client.connect(matches[0], self._midi_port)
        return matches[0]

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        self.client.activate()
        self._started = True
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
        self._midi_active = False
        try:
            if self.shutdown_reason is None:
                self.client.deactivate()
            self.client.close()
        except Exception as exc:  # noqa: BLE001 - closing after a server death may fail
            log.debug("closing JACK client: %s", exc)
        self.client = None
        self._midi_port = None

    def latency_frames(self) -> int:
        return self._scratch.shape[0]

    def status(self) -> dict:
        out = {**super().status(), "xruns": self.xruns,
               "client": self.client.name if self.client is not None else None,
               "server_lost": self.shutdown_reason, "reconnects": self.reconnects}
        if self.client is not None and self._midi_port is not None:
            out["midi_in"] = {"port": self._midi_port.name,
                              "dropped": getattr(self._midi_ring, "dropped", None)}
        return out
