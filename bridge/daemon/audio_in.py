"""Live audio in: the model continues what it hears (its own output mixed with the input).

Each generated frame, the frame's own audio (the codec output, before volume
and mute) is mixed with one frame of live input, ``(1 - amount) * own +
amount * input``, and encoded by the package's SpectroStream encoder
(``codec_encoder``). Those codes, as model tokens, are the next frames'
previous-frame tokens (``Engine.step(prev_tokens=...)``) instead of the
model's own. ``amount`` 0 (the default) is off: the encoder does not run and
the model continues its own tokens, exactly as without this module.

Alignment: encoder call k returns the codes of the audio of call k - 1 (its
STFT looks 480 samples ahead; see onnx_export/spectrostream_encoder.py), and
its first call after a (re)start is masked. The mix of frame n is encoded
when frame n is decoded (on the codec thread when it overlaps the model),
giving the codes of the mix of frame n - 1; those are the temporal input of
frame n + 1 + ``codec_delay`` (``codec_delay`` = 1 with the overlapped codec:
frame n's audio exists only while frame n + 1 is generated). So the mix of
frame n conditions frame n + 2 (n + 3 overlapped). When the encoder
(re)starts (amount leaves 0, or the engine resets) the first frames after it
use the model's own tokens.

Input comes from an :class:`~bridge.audio.ring.AudioRing` that the audio
callback fills (JACK ``mrt-bridge:in_L``/``in_R``, or the input device). Each
decoded frame takes 1920 samples from it; a short ring gives silence for the
missing part (counted), and more than ``MAX_BACKLOG_FRAMES`` waiting is
trimmed to one frame (counted) so the input never lags behind.

With ``trace_dir`` (``serve --record DIR``) it writes, per decoded frame
(numbered by ``step`` from 0 since the last restart of the stream),
``input.wav`` and ``own.wav`` (float32, 1920 samples each) and ``mix.jsonl``
(the amount the mix used, whether it was encoded); and per generated frame
``temporal.jsonl`` (its step, and the temporal input tokens used when they
were not the model's own, with ``from_step``, the frame whose decoding
encoded them), so the encoding can be checked offline frame by frame.
"""

import json
import logging
from pathlib import Path

import numpy as np

from bridge import FRAME_SAMPLES
from bridge import io_names as io
from bridge.audio.ring import AudioRing
from bridge.audio.wav_float import FloatWavWriter
from bridge.engine import codes_to_tokens
from bridge.runtime import StatefulSession, make_session

log = logging.getLogger(__name__)

MAX_BACKLOG_FRAMES = 3


class InputMix:
    """Feeds encoded (own output + live input) back as the model's previous-frame tokens."""

    def __init__(self, engine, ring: AudioRing, amount: float = 0.0, *, threads: int | None = None,
                 trace_dir: Path | None = None) -> None:
        package = engine.package
        if not package.has_graph(io.CODEC_ENCODER):
            raise RuntimeError(f"model package {package.root} has no {io.CODEC_ENCODER} graph: no live audio in")
        self.encoder = StatefulSession(
            make_session(package.graph_path(io.CODEC_ENCODER), engine.providers, threads), io.CODEC_ENCODER)
        self.ring = ring
        self._amount = 0.0
        self.set_amount(amount)
        self.codec_delay = 0  # frames between a frame's generation and its decoding (the daemon sets it)
        self._running = False  # the encoder has state from earlier frames
        self._tokens: dict[int, np.ndarray] = {}  # decoded step -> tokens its encoder call gave
        self._generated = 0  # steps generated since the last restart of the stream
        self._decoded = 0  # steps decoded since then
        self._input = np.zeros((FRAME_SAMPLES, 2), np.float32)
        self._scratch = np.zeros((FRAME_SAMPLES, 2), np.float32)
        self._mix = np.zeros((1, FRAME_SAMPLES, 2), np.float32)
        self.device = None  # a DeviceInput to close with this
        self.frames = 0
        self.short = 0  # frames whose input arrived incomplete (silence filled in)
        self.trimmed = 0  # frames of input dropped to keep up
        self._trace = None
        if trace_dir is not None:
            trace_dir = Path(trace_dir)
            trace_dir.mkdir(parents=True, exist_ok=True)
            self._trace = tuple(open(trace_dir / n, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
                                for n in ("mix.jsonl", "temporal.jsonl"))
            self._wavs = (FloatWavWriter(trace_dir / "input.wav"), FloatWavWriter(trace_dir / "own.wav"))

    # -- control (any thread) --------------------------------------------------------
    def set_amount(self, amount: float) -> None:
        a = float(amount)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"input amount {amount!r} outside 0..1")
        self._amount = a

    def status(self) -> dict:
        return {"amount": self._amount, "encoding": self._running, "frames": self.frames,
                "short_frames": self.short, "trimmed_frames": self.trimmed, "ring_fill": self.ring.fill}

    def wrap_engine(self, engine):
        """The engine as the frame loop should see it (generate uses, decode feeds the input mix)."""
        return _InputEngine(engine, self)

    # -- frame-loop thread ----------------------------------------------------------------
    def tokens_for_next(self) -> np.ndarray | None:
        """Temporal input tokens for the frame about to be generated (None: the model's own)."""
        m = self._generated
        self._generated = m + 1
        source = m - 1 - self.codec_delay
        tokens = self._tokens.pop(source, None)
        for old in [k for k in self._tokens if k < source]:
            del self._tokens[old]
        if self._trace is not None:
            self._trace[1].write(json.dumps({"step": m, "from_step": source if tokens is not None else None,
                                             "prev_tokens": None if tokens is None else tokens.tolist()}) + "\n")
        return tokens

    def restart(self) -> None:
        """The stream restarts (engine reset; the codec has been flushed): so does the encoded history."""
        if self._running:
            self.encoder.reset()
        self._running = False
        self._tokens.clear()
        self._generated = self._decoded = 0

    # -- codec thread (or the frame-loop thread without overlap) -----------------------------
    def _take_input(self) -> np.ndarray:
        while self.ring.fill > MAX_BACKLOG_FRAMES * FRAME_SAMPLES:
            self.ring.read_into(self._scratch)
            self.trimmed += 1
        if self.ring.fill < FRAME_SAMPLES:
            self.short += 1
        # read_into fills a shortfall with silence; the ring's own underrun count is not ours to report
        self.ring.read_into(self._input)
        return self._input

    def after_decode(self, audio: np.ndarray | None) -> None:
        """One frame decoded: mix its own audio with one frame of input and encode it (amount > 0)."""
        j = self._decoded
        self._decoded = j + 1
        inp = self._take_input()
        amount = self._amount
        encoded = amount > 0.0 and audio is not None
        if encoded:
            np.multiply(audio, np.float32(1.0 - amount), out=self._mix[0])
            self._mix[0] += np.float32(amount) * inp
            codes = self.encoder.run({io.AUDIO: self._mix})[io.CODES][0]
            if self._running:  # the first call after a (re)start is masked (encoder latency)
                self._tokens[j] = codes_to_tokens(codes)
            self._running = True
        elif self._running:
            self.encoder.reset()
            self._running = False
        self.frames += 1
        if self._trace is not None:
            self._wavs[0].write(inp)
            self._wavs[1].write(audio if audio is not None else np.zeros_like(inp))
            self._trace[0].write(json.dumps({"step": j, "amount": amount, "encoded": encoded}) + "\n")

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None
        if self._trace is not None:
            for item in (*self._trace, *self._wavs):
                item.close()
            self._trace = None


class _InputEngine:
    """The engine with live input: ``generate`` reads encoded tokens, ``decode`` encodes the mix."""

    def __init__(self, engine, mix: InputMix) -> None:
        self._engine = engine
        self._mix = mix

    def generate(self, *args, **kwargs):
        tokens = self._mix.tokens_for_next()
        if tokens is not None:
            kwargs["prev_tokens"] = tokens
        return self._engine.generate(*args, **kwargs)

    def decode(self, codes):
        audio = self._engine.decode(codes)
        self._mix.after_decode(audio)
        return audio

    def step(self, *args, **kwargs):
        frame = self.generate(*args, **kwargs)
        frame.audio = self.decode(frame.codes)
        return frame

    def reset(self, *args, **kwargs):
        self._mix.restart()
        return self._engine.reset(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


class DeviceInput:
    """The default (or a named) PortAudio input device, written into ``ring`` by its callback."""

    def __init__(self, ring: AudioRing, device_name: str | None = None) -> None:
        import sounddevice as sd

        self.ring = ring
        self.dropped = 0
        devices = [dict(d) for d in sd.query_devices()]
        index = sd.default.device[0]
        if device_name:
            index = next((i for i, d in enumerate(devices)
                          if device_name.lower() in d["name"].lower() and d["max_input_channels"] > 0), None)
        if index is None or index < 0 or devices[index]["max_input_channels"] < 1:
            raise RuntimeError("no audio input device")
        self.channels = min(2, int(devices[index]["max_input_channels"]))
        self._stereo = np.zeros((8192, 2), np.float32)
        self.stream = sd.InputStream(device=index, samplerate=48_000, channels=self.channels, dtype="float32",
                                     callback=self._callback)
        self.name = devices[index]["name"]

    def _callback(self, indata: np.ndarray, frames: int, time, status) -> None:
        if self.channels == 2:
            block = indata
        else:
            block = self._stereo[:frames]
            block[:, 0] = indata[:, 0]
            block[:, 1] = indata[:, 0]
        if not self.ring.write(block):
            self.dropped += 1

    def start(self) -> None:
        self.stream.start()

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


def open_audio_in(sink, engine, *, device_name: str | None = None, threads: int | None = None,
                  trace_dir: Path | None = None) -> InputMix | None:
    """Live input for the sink in use (JACK: ports in_L/in_R on the sink's client; device: the input
    device); None, with one log line, where there is none. Call after the sink opened."""
    from bridge.audio.sinks.device import DeviceSink
    from bridge.audio.sinks.jack_sink import JackSink

    ring = AudioRing(FRAME_SAMPLES * (MAX_BACKLOG_FRAMES + 8))
    device = None
    try:
        if isinstance(sink, JackSink):
            if sink.samplerate != 48_000:
                raise RuntimeError(f"the JACK server runs at {sink.samplerate} Hz; live input needs 48000 Hz")
            ports = sink.open_audio_input(ring)
        elif isinstance(sink, DeviceSink):
            device = DeviceInput(ring, device_name)
            ports = [device.name]
        else:
            return None
        mix = InputMix(engine, ring, threads=threads, trace_dir=trace_dir)
    except (RuntimeError, OSError) as exc:
        log.warning("no live audio input (%s); /input/amount is unavailable", exc)
        return None
    if device is not None:
        device.start()
        mix.device = device
    log.info("live audio in: %s (off until /input/amount or [audio_in] amount > 0)", ", ".join(ports))
    return mix
