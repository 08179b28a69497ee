"""`--audio device[:NAME]`: a PortAudio output device through ``sounddevice``.

``device`` is the default output; ``device:NAME`` picks the first output
device whose name contains NAME (case-insensitive, exact name preferred) —
this is how virtual cables (BlackHole, VB-Cable, JACK via PortAudio) are
reached. The stream runs at 48 kHz; only if the device refuses 48 kHz does
it run at the device's default rate with resampling in the frame loop (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from bridge.quiet import quiet_stderr

from ..ring import AudioRing
from .base import Sink, SinkUnavailable

log = logging.getLogger(__name__)


def _describe(devices: Sequence[dict]) -> str:
    outs = [f"[{i}] {d['name']}" for i, d in enumerate(devices) if d.get("max_output_channels", 0) > 0]
    return "output devices: " + (", ".join(outs) if outs else "none found")


def pick_device(devices: Sequence[dict], name: str | None, default_index: int | None) -> int:
    """Index of the output device matching ``name`` (substring), or the default one.

    Raises SinkUnavailable naming the devices that exist when nothing matches.
    """
    outputs = [i for i, d in enumerate(devices) if d.get("max_output_channels", 0) > 0]
    if not name:
        if default_index is not None and default_index in outputs:
            return default_index
        if outputs:
            return outputs[0]
        raise SinkUnavailable(f"no PortAudio output device ({_describe(devices)})", "device")
    wanted = name.casefold()
    exact = [i for i in outputs if devices[i]["name"].casefold() == wanted]
    partial = [i for i in outputs if wanted in devices[i]["name"].casefold()]
    matches = exact or partial
    if not matches:
        raise SinkUnavailable(f"no output device matching {name!r} ({_describe(devices)})")
    if len(matches) > 1:
        log.info("%d devices match %r; using [%d] %s", len(matches), name, matches[0],
                 devices[matches[0]]["name"])
    return matches[0]


class DeviceSink(Sink):
    """Plays the ring through a PortAudio output stream (callback mode)."""

    name = "device"

    def __init__(self, ring: AudioRing, device_name: str | None = None) -> None:
        super().__init__(ring)
        self.device_name = device_name
        self.device_index: int | None = None
        self.stream = None
        self.output_underflows = 0

    def open(self) -> None:
        with quiet_stderr("PortAudio"):  # its ALSA/JACK probing prints raw errors at start-up
            try:
                import sounddevice as sd
            except OSError as exc:  # libportaudio missing
                raise SinkUnavailable(f"PortAudio library not found ({exc}); install libportaudio2",
                                      "device") from exc
            devices = [dict(d) for d in sd.query_devices()]
        default_out = sd.default.device[1]
        default_out = None if default_out is None or default_out < 0 else int(default_out)
        self.device_index = pick_device(devices, self.device_name, default_out)
        info = devices[self.device_index]
        try:
            sd.check_output_settings(device=self.device_index, channels=2, dtype="float32",
                                     samplerate=48_000)
            self.samplerate = 48_000
        except sd.PortAudioError:
            self.samplerate = int(info["default_samplerate"])
            log.warning("device %r cannot run at 48000 Hz: resampling 48000 -> %d Hz (linear)",
                        info["name"], self.samplerate)
        try:
            self.stream = sd.OutputStream(device=self.device_index, samplerate=self.samplerate,
                                          channels=2, dtype="float32", callback=self._callback)
        except sd.PortAudioError as exc:
            raise SinkUnavailable(f"cannot open output device {info['name']!r}: {exc}") from exc
        log.info("audio device [%d] %s at %d Hz, latency %.1f ms", self.device_index, info["name"],
                 self.samplerate, 1000 * self.stream.latency)

    def _callback(self, outdata: np.ndarray, frames: int, time, status) -> None:
        if status.output_underflow:
            self.output_underflows += 1
        self.ring.read_into(outdata)

    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            finally:
                self.stream = None

    def latency_frames(self) -> int:
        return int(self.stream.latency * self.samplerate) if self.stream is not None else 0

    def status(self) -> dict:
        return {**super().status(), "device_index": self.device_index,
                "output_underflows": self.output_underflows}
