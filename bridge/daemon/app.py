"""The live daemon: wires engine, control inputs, frame loop, ring and sinks, and runs them.

Start-up order: validate the config and bind the OSC and PCM ports (so a
broken config or a busy port fails before any output is touched), open the
audio sink (fails early with a clear message), load the engine, start the
frame loop and fill the ring, start the sink, then the control inputs (OSC,
MIDI, game mapping). Shutdown
(SIGINT/SIGTERM, or a dead sink/loop): close the inputs, stop producing,
drain what is buffered, close the sink and the PCM stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bridge.audio.pcm_stream import PcmStreamServer
from bridge.audio.ring import AudioRing
from bridge.audio.sinks import Sink, make_sink
from bridge.control.daw import DawControls
from bridge.control.state import ControlState
from bridge.pipeline import real_time_fixes
from bridge.stop_flag import StopFlag

from .frame_loop import DEFAULT_BUFFER_FRAMES, FrameLoop, ring_capacity
from .latency import control_latency, internal_frames
from .stats import GrowthWarning, daemon_status, underrun_advice
from .trace import FrameTrace

log = logging.getLogger(__name__)

# Largest buffer the ring is sized for (control may request up to 96000 samples).
MAX_BUFFER_FRAMES = 50
FILL_TIMEOUT_S = 60.0
MAX_SINK_RATE = 192_000


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class ServeOptions:
    """Everything `mrt-bridge serve` was asked to do."""

    model: Path
    audio: str = "jack"
    midi: str = "jack"
    osc_host: str = "127.0.0.1"
    osc_port: int = 9000
    buffer_frames: int = DEFAULT_BUFFER_FRAMES
    pcm_port: int | None = None
    trace: Path | None = None
    provider: str = "auto"
    config: Path | None = None
    palette: Path | None = None
    jack_autoconnect: bool = True
    threads: int | None = None
    midi_connect: str | None = None
    num_cfgs: int = 2
    overlap: bool | None = None  # codec on a second thread: None = when the model needs it
    preset: str = "default"  # a bridge.presets name
    web_port: int | None = None
    web_host: str = "127.0.0.1"
    tempo_source: str | None = None  # None: the config's [tempo] source, else "osc"
    record: Path | None = None  # serve --record DIR
    input_device: str | None = None  # with --audio device: the input device's name (default input)


# (options, control state, status provider, the open and started audio sink, DAW controls) -> closers.
# The sink is passed so that MIDI can share the JACK audio client (one `mrt-bridge` client).
# With --web the factory also gets ``web=`` the bound WebStudio, to attach to the OSC dispatch.
InputsFactory = Callable[..., list[Closeable]]


class Daemon:
    """One serving session. ``run(stop)`` blocks until ``stop`` is set or something dies."""

    def __init__(self, opts: ServeOptions, make_engine: Callable[[], object],
                 make_control: Callable[[object], ControlState],
                 inputs_factory: InputsFactory | None = None) -> None:
        self.opts = opts
        self.make_engine = make_engine
        self.make_control = make_control
        self.engine = None
        self.control: ControlState | None = None
        self.inputs_factory = inputs_factory
        self.sink: Sink | None = None
        self.ring: AudioRing | None = None
        self.loop: FrameLoop | None = None
        self.pcm: PcmStreamServer | None = None
        self.web = None  # bridge.web.server.WebStudio with --web
        self.inputs: list[Closeable] = []
        self.daw = DawControls()
        self._port_latency = None
        self.started_at = time.monotonic()
        self.exit_reason = ""

    # -- status -------------------------------------------------------------------
    def status(self) -> dict:
        """Daemon figures for status replies (thread-safe reads, plain JSON types)."""
        out = daemon_status(self.started_at, self.opts.model, self.engine,
                            None if self.loop is None else self.loop.status())
        if self.sink is not None:
            out["sink"] = self.sink.status()
            if self.loop is not None:
                out["latency"] = self._latency(self.loop.step_times.percentiles()["p50"] or 0.0)
        if self.pcm is not None:
            out["pcm"] = self.pcm.status()
        if self.web is not None:
            out["web"] = self.web.status()
        return out

    def _attach_port_latency(self, client) -> None:
        from bridge.audio.jack_latency import PortLatency

        loop, sink = self.loop, self.sink
        self._port_latency = PortLatency(client, lambda: internal_frames(
            loop.buffer_frames + loop.codec.latency_frames, sink.latency_frames(), sink.samplerate))

    def _latency(self, step_ms: float) -> dict:
        """Expected control-to-ear latency (bridge/daemon/latency.py) for /status and the start-up log."""
        return control_latency(self.loop.buffer_frames + self.loop.codec.latency_frames, step_ms,
                               self.sink.latency_frames(), self.sink.samplerate, _playback_ms(self.sink))

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        """Open the sink, fill the ring, start audio and inputs. Raises SinkUnavailable."""
        opts = self.opts
        prepare = getattr(self.inputs_factory, "prepare", None)
        if prepare is not None:
            prepare(opts)  # config checked, OSC port bound: before any output is opened
        if opts.pcm_port is not None:
            self.pcm = PcmStreamServer(opts.pcm_port)
        taps = (self.pcm,) if self.pcm is not None else ()
        trace = FrameTrace(opts.trace)
        if opts.web_port is not None:  # binds its port too: before any output is opened
            from bridge.web.server import WebStudio
            self.web = WebStudio(opts.web_host, opts.web_port, trace)
            taps = (*taps, self.web.tap)
        # Sized for the highest rate a sink may run at; the sink decides the real rate on open().
        self.ring = AudioRing(ring_capacity(max(MAX_BUFFER_FRAMES, opts.buffer_frames), MAX_SINK_RATE))
        self.sink = make_sink(opts.audio, self.ring, jack_autoconnect=opts.jack_autoconnect)
        self.sink.open()
        rate = self.sink.samplerate
        if rate > MAX_SINK_RATE:
            raise RuntimeError(f"audio output runs at {rate} Hz; at most {MAX_SINK_RATE} Hz is supported")
        # The model loads after the sink opened, so a missing audio output fails fast.
        self.engine = self.make_engine()
        self.control = self.make_control(self.engine)
        if opts.overlap is None:  # auto: decided once, before anything plays, so latency is known up front
            from bridge.pipeline import choose_overlap

            opts.overlap = choose_overlap(self.engine)
        engine, control = self.engine, self.control
        from .audio_in import open_audio_in

        self.daw.audio_in = open_audio_in(self.sink, self.engine, device_name=opts.input_device,
                                          threads=opts.threads, trace_dir=opts.record)
        if self.daw.audio_in is not None:
            engine = self.daw.audio_in.wrap_engine(engine)
        if opts.record is not None:
            from .session_record import SessionRecorder

            self.daw.recorder = SessionRecorder(opts.record)
            engine, control = self.daw.recorder.wrap_engine(engine), self.daw.recorder.wrap_control(control)
            taps = (*taps, self.daw.recorder)
        self.loop = FrameLoop(engine, control, self.ring, buffer_frames=opts.buffer_frames,
                              out_rate=rate, taps=taps, trace=trace, overlap=opts.overlap)
        if self.daw.audio_in is not None:
            self.daw.audio_in.codec_delay = self.loop.codec.latency_frames
        self.loop.start()
        if not self.loop.wait_filled(FILL_TIMEOUT_S):
            raise RuntimeError(self.loop.failed or
                               f"the model could not fill {opts.buffer_frames} frames in {FILL_TIMEOUT_S:.0f} s "
                               "(far slower than real time; try --provider cuda or a smaller model)")
        self.ring.reset_low_water()
        from bridge.audio.sinks.jack_sink import JackSink

        if isinstance(self.sink, JackSink):  # report the internal delay as the ports' latency ranges,
            self.sink.client_hooks.append(self._attach_port_latency)  # again after every reconnect
            self._attach_port_latency(self.sink.client)
        self.sink.start()
        if self.inputs_factory is not None:
            extra = {} if self.web is None else {"web": self.web}
            self.inputs = self.inputs_factory(opts, self.control, self.status, self.sink, daw=self.daw, **extra)
        latency = self._latency(0.0)["control_to_ear_ms"]
        log.info("serving: audio=%s (%d Hz), buffer %d frames%s, guidance rows %d, control latency about %.0f ms",
                 self.sink.name, rate, self.loop.buffer_frames,
                 " + 1 in the codec" if self.loop.codec.latency_frames else "", self.engine.rows, latency)

    def run(self, stop: StopFlag) -> int:
        """Start, serve until ``stop`` is set (or a part fails), shut down. Returns an exit code."""
        try:
            self.start()
            code = self._serve(stop)
        finally:
            self.shutdown()
        return code

    def _serve(self, stop: StopFlag) -> int:
        underrun_warning = GrowthWarning()
        buffer_frames = self.loop.buffer_frames
        while not stop.wait(0.2):
            if self.loop.buffer_frames != buffer_frames and self._port_latency is not None:
                buffer_frames = self.loop.buffer_frames
                self._port_latency.recompute()  # tell JACK the new internal delay
            self.sink.poll()
            if self.sink.failed:
                self.exit_reason = self.sink.failed
                log.error("%s; stopping", self.sink.failed)
                return 1
            if self.loop.failed:
                self.exit_reason = self.loop.failed
                log.error("%s; stopping", self.loop.failed)
                return 1
            underruns = self.ring.underruns
            if underrun_warning.due(underruns):
                log.warning("audio underruns: %d so far: %s", underruns, underrun_advice(
                    self.loop.step_times.percentiles(), self.loop.buffer_frames, real_time_fixes(self.engine)))
        self.exit_reason = "stopped"
        return 0

    def shutdown(self) -> None:
        """Stop inputs, stop producing, drain the ring, close sink and PCM stream. Idempotent."""
        for item in self.inputs:
            try:
                item.close()
            except Exception:
                log.exception("closing %r", item)
        self.inputs = []
        release = getattr(self.inputs_factory, "close", None)
        if release is not None:
            release()
        # The ring's low water while frames were still coming: the drain below empties it.
        low_water_ms = None if self.loop is None else self.loop.status()["ring_low_water_ms"]
        if self.loop is not None:
            self.loop.stop()
        if self.ring is not None:
            self.ring.close()
        if self.sink is not None and self.ring is not None and self.loop is not None and not self.sink.failed:
            deadline = time.monotonic() + self.ring.fill / self.sink.samplerate + 0.5
            while self.ring.fill > 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.sink is not None:
            self.sink.stop()
        if self.pcm is not None:
            self.pcm.close()
        if self.web is not None:
            self.web.close()
        if self.daw.recorder is not None:
            self.daw.recorder.close()
        if self.daw.audio_in is not None:
            self.daw.audio_in.close()
        if self.loop is not None:
            status = self.loop.status()
            log.info("stopped after %d frames: %d underruns, step p50 %s / p99 %s ms, ring low water %s ms",
                     status["frames"], status["underruns"], status["step_ms"]["p50"],
                     status["step_ms"]["p99"], low_water_ms)


def _playback_ms(sink: Sink) -> float:
    """The playback latency JACK reports downstream of our first output (the sound card's); 0 elsewhere."""
    from bridge.audio.sinks.jack_sink import JackSink

    if not isinstance(sink, JackSink) or sink.client is None:
        return 0.0
    from bridge.audio.jack_latency import PLAYBACK, latency_range

    try:
        return 1000.0 * latency_range(sink.client, f"{sink.client.name}:out_L", PLAYBACK)[1] / sink.samplerate
    except Exception:  # noqa: BLE001 - server gone: nothing to report
        return 0.0
