"""Measure the daemon's control-to-output latency end to end through JACK (`mrt-bridge latency`).

The real daemon runs in this process on a JACK server (by default a private
``jackd -d dummy``), its outputs recorded by a probe client that notes the
JACK frame time of every block. Each repeat resets the stream (``/notes/clear``
then ``/seed S``: from that frame the output is exactly an offline render from
seed S), waits a random fraction of a second, sends a change and notes the
JACK frame time. The change is one that alters the very frame it lands in:
``style`` (OSC ``/style/tokens``: the model's tokens change), ``volume`` (OSC
``/volume`` or MIDI CC 7) or ``note`` (a note-on over OSC or MIDI; on the
bundled synthetic model notes change nothing, so use it with real weights).
The first recorded sample that differs from the offline render (same seed,
no change), minus the send time, is that repeat's latency: everything a listener
waits for (the frames buffered ahead, frame cadence, model step, codec
look-ahead, JACK period). The system playback port's own latency (the sound
card's; reported by JACK) comes on top for the ear and is printed beside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE
from bridge.daemon.frame_loop import DEFAULT_BUFFER_FRAMES

log = logging.getLogger(__name__)

PITCH = 60
STYLE = [50 + 80 * i for i in range(12)]
# change -> (OSC messages that undo it, applied before each reset)
UNDO = {"style": [("/style/clear", [])], "volume": [("/volume", [1.0])], "note": [("/notes/clear", [])]}
SETTLE_S = (0.5, 0.9)  # random wait between the reset and the change
AFTER_S = 0.8  # the change must show within this long


@contextlib.contextmanager
def private_jackd(period: int, rate: int = SAMPLE_RATE) -> Iterator[str]:
    """Run ``jackd -d dummy`` under a private name and point this process's JACK clients at it."""
    jackd = shutil.which("jackd")
    if jackd is None:
        raise RuntimeError("jackd not found (Debian/Ubuntu: apt-get install jackd2), or pass --server NAME")
    name = f"mrt-latency-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([jackd, "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
        os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
        try:
            _wait_for_server(proc, out)
            yield name
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_server(proc: subprocess.Popen, out) -> None:
    import jack

    end = time.monotonic() + 10.0
    while True:
        try:
            jack.Client("mrt-latency-ping", no_start_server=True).close()
            return
        except jack.JackOpenError:
            if proc.poll() is not None or time.monotonic() > end:
                out.seek(0)
                raise RuntimeError("jackd -d dummy did not start: "
                                   + out.read().decode(errors="replace")[-500:]) from None
            time.sleep(0.1)


class _Probe:
    """JACK client recording two inputs and the frame time of each block, preallocated."""

    def __init__(self, seconds: float) -> None:
        import jack

        self.client = jack.Client("mrt-latency-probe", no_start_server=True)
        self.ins = [self.client.inports.register(n) for n in ("in_L", "in_R")]
        self.rate = self.client.samplerate
        n = int(seconds * self.rate)
        self.audio = np.zeros((n, 2), np.float32)
        self.times = np.zeros(n, np.int64)  # JACK frame time of each recorded sample
        self.pos = 0
        self.recording = False
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if not self.recording or self.pos + frames > len(self.audio):
            return
        p = self.pos
        self.audio[p:p + frames, 0] = self.ins[0].get_array()
        self.audio[p:p + frames, 1] = self.ins[1].get_array()
        self.times[p:p + frames] = self.client.last_frame_time + np.arange(frames)
        self.pos = p + frames

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


@dataclass
class LatencyResult:
    latencies_ms: list[float]
    playback_ms: float  # the system playback port's latency (JACK's figure for the hardware)
    period: int
    rate: int
    buffer_frames: int
    via: str
    change: str = "style"
    stated_ms: float | None = None
    overlap: bool = False  # the codec overlap the daemon ran with (decided by it under auto)
    failures: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference(make_engine, make_control, frames: int) -> np.ndarray:
    """The daemon's output for ``frames`` frames from a fresh stream with its initial controls."""
    engine = make_engine()
    control = make_control(engine)
    out = np.zeros((frames * FRAME_SAMPLES, 2), np.float32)
    for i in range(frames):
        snap = control.snapshot(i)
        frame = engine.step(snap.conditioning, snap.temperature, snap.top_k, guidance=snap.guidance)
        out[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] = frame.audio
    return out


def measure(model: Path, *, repeats: int = 10, buffer_frames: int = DEFAULT_BUFFER_FRAMES, via: str = "osc", change: str = "style",
            period: int = 256, server: str | None = None, seed: int = 0, threads: int | None = None,
            provider: str = "auto", overlap: bool | None = None, rng: random.Random | None = None) -> LatencyResult:
    """Run the daemon on JACK and measure ``repeats`` change -> first changed output sample latencies."""
    if via not in ("osc", "midi"):
        raise ValueError(f"--via must be osc or midi, got {via!r}")
    if change not in UNDO or (via, change) == ("midi", "style"):
        raise ValueError(f"--change {change} cannot be sent via {via}; style: osc; volume, note: osc or midi")
    if repeats < 1:
        raise ValueError("--repeats must be at least 1")
    ctx = contextlib.nullcontext(server) if server else private_jackd(period)
    with ctx as name:
        if server:
            os.environ["JACK_DEFAULT_SERVER"] = name
        return _measure(model, repeats, buffer_frames, via, change, seed, threads, provider, overlap,
                        rng or random.Random(0))


def _measure(model, repeats, buffer_frames, via, change, seed, threads, provider, overlap, rng) -> LatencyResult:
    from pythonosc.udp_client import SimpleUDPClient

    from bridge.audio.jack_latency import PLAYBACK, latency_range
    from bridge.daemon.app import Daemon, ServeOptions
    from bridge.daemon.inputs import build_control, start_inputs
    from bridge.engine import Engine
    from bridge.stop_flag import StopFlag

    per_repeat = SETTLE_S[1] + AFTER_S + 0.2
    ref_frames = int((SETTLE_S[1] + AFTER_S) * FRAME_RATE) + 10
    opts = ServeOptions(model=model, audio="jack", midi="jack" if via == "midi" else "none",
                        osc_port=_free_udp_port(), buffer_frames=buffer_frames, jack_autoconnect=False,
                        threads=threads, provider=provider, overlap=overlap)

    def make_engine() -> Engine:
        return Engine(model, provider, threads=threads, seed=seed)

    def make_control(engine):
        return build_control(opts, engine)

    ref = _reference(make_engine, make_control, ref_frames)
    # rtmidi holds the GIL while it talks to the JACK server, which may wait for our Python process
    # callbacks: its client must exist before any of ours is active.
    send = _Sender(via, change, opts.osc_port)
    probe = _Probe(seconds=8.0 + repeats * per_repeat)
    rate = probe.rate
    daemon = Daemon(opts, make_engine, make_control, start_inputs)
    stop = StopFlag()
    runner = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    result = LatencyResult([], 0.0, probe.client.blocksize, rate, buffer_frames, via, change)
    sends: list[tuple[int, int]] = []  # (reset frame time, send frame time)
    try:
        runner.start()
        end = time.monotonic() + 60
        while not daemon.inputs:  # inputs start last: the daemon is serving
            if not runner.is_alive() or time.monotonic() > end:
                raise RuntimeError(f"the daemon did not start: {daemon.exit_reason or 'see the log above'}")
            time.sleep(0.05)
        for ours, theirs in zip(probe.ins, ("mrt-bridge:out_L", "mrt-bridge:out_R")):
            probe.client.connect(theirs, ours)
        send.connect(probe.client)
        osc = SimpleUDPClient("127.0.0.1", opts.osc_port)
        system = probe.client.get_ports(is_audio=True, is_input=True, is_physical=True)
        if system:
            result.playback_ms = 1000 * latency_range(probe.client, system[0].name, PLAYBACK)[1] / rate
        probe.recording = True
        time.sleep(0.3)
        for _ in range(repeats):
            for address, args in UNDO[change]:
                osc.send_message(address, args)
            osc.send_message("/seed", [seed])
            t_reset = probe.client.frame_time
            time.sleep(rng.uniform(*SETTLE_S))
            t_send = probe.client.frame_time
            send.change()
            sends.append((t_reset, t_send))
            time.sleep(AFTER_S)
        status = daemon.status()
        result.stated_ms = status.get("latency", {}).get("control_to_ear_ms")
        result.overlap = bool(daemon.loop is not None and daemon.loop.codec.overlap)
    finally:
        probe.recording = False
        stop.set()
        runner.join(15)
        probe.close()
        send.close()
    audio, times = probe.audio[:probe.pos], probe.times[:probe.pos]
    for r, (t_reset, t_send) in enumerate(sends):
        try:
            frames = _first_change(audio, times, ref, t_reset, t_send, int(AFTER_S * rate), result.period)
            result.latencies_ms.append(1000 * frames / rate)
        except ValueError as exc:
            result.failures.append(f"repeat {r}: {exc}")
    return result


MAX_SLIP_PERIODS = 8  # missed cycles of the daemon's own client one block may reveal at once


def _first_change(audio: np.ndarray, times: np.ndarray, ref: np.ndarray, t_reset: int, t_send: int,
                  limit: int, period: int) -> int:
    """Frames from ``t_send`` to the first recorded sample that differs from the reference stream.

    The reset stream is found by one exact frame of it, taken after the daemon's 40 ms fade-in
    (bridge/audio/gain.py), which the offline reference does not have. Then each recorded
    ``period`` block is placed by its JACK frame time, so a cycle the probe missed leaves a hole,
    not a shift. A cycle the daemon's own client missed delays the rest of its stream by whole
    periods (its ring is read one cycle later, nothing is lost; the port holds its last block), so
    a block that matches the reference a few periods later is the same stream, not the change. On a
    loaded VM the probe's frame time was also seen one period off for single blocks, hence one
    period of slack the other way.
    """
    window = 1920
    z = int(np.argmax(np.any(ref != 0, axis=1))) + 2 * window  # a reference sample past the fade-in
    lo = int(np.searchsorted(times, t_reset))
    hi = int(np.searchsorted(times, t_send))
    t0 = None  # the frame time at which the reset stream's first sample played
    for i in np.nonzero(audio[lo:hi, 0] == ref[z, 0])[0] + lo:
        contiguous = i + window <= len(audio) and times[i + window - 1] - times[i] == window - 1
        if contiguous and np.array_equal(audio[i:i + window], ref[z:z + window]):
            t0 = int(times[i]) - z
            break
    if t0 is None:
        raise ValueError("the reset stream was not found in the recording (an underrun?)")
    # Whole probe cycles (each callback appends one period, so they start at multiples of it), from
    # the matched frame up to the moment the next repeat's reset could be heard.
    first = -(-int(np.searchsorted(times, t0 + z)) // period) * period
    until = int(np.searchsorted(times, t_send + limit))
    slip = 0  # periods the daemon's stream runs behind t0 so far
    for b in range(first, until - period + 1, period):
        block, at = audio[b:b + period], times[b:b + period] - t0
        if at[-1] - slip * period >= len(ref):
            break  # past the reference: nothing left to compare
        for s in (slip, *range(slip + 1, slip + 1 + MAX_SLIP_PERIODS), slip - 1):
            k = at - s * period
            if k[0] >= 0 and k[-1] < len(ref) and np.array_equal(block, ref[k]):
                slip = s
                break
        else:  # the change (or a glitch): its first sample at the current alignment
            d = b + int(np.nonzero(np.any(block != ref[at - slip * period], axis=1))[0][0])
            if times[d] < t_send:
                raise ValueError("the output changed before the change was sent (misaligned)")
            return int(times[d] - t_send)
    raise ValueError("the output never changed after the change")


class _Sender:
    """Sends the change over OSC, or MIDI from a JACK MIDI port wired to mrt-bridge:midi_in."""

    def __init__(self, via: str, change: str, osc_port: int) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.kind = change
        self.osc = SimpleUDPClient("127.0.0.1", osc_port)
        self.out = None
        if via == "midi":
            import rtmidi

            self.out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="mrt-latency-midi")
            self.out.open_virtual_port("out")

    def connect(self, client) -> None:
        """Wire the MIDI port to the daemon's input (through a JACK-Client client, which releases the GIL)."""
        if self.out is None:
            return
        end = time.monotonic() + 5
        while not (ports := client.get_ports("mrt-latency-midi", is_midi=True, is_output=True)):
            if time.monotonic() > end:
                raise RuntimeError("the probe's MIDI port did not appear")
            time.sleep(0.02)
        client.connect(ports[0], "mrt-bridge:midi_in")

    def change(self) -> None:
        if self.out is not None:
            self.out.send_message([0x90, PITCH, 100] if self.kind == "note" else [0xB0, 7, 64])
        elif self.kind == "note":
            self.osc.send_message("/note/on", [PITCH, 100])
        elif self.kind == "volume":
            self.osc.send_message("/volume", [0.5])
        else:
            self.osc.send_message("/style/tokens", STYLE)

    def close(self) -> None:
        if self.out is not None:
            self.out.close_port()
            self.out.delete()
