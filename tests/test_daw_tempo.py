"""Tempo from the DAW: MIDI clock and JACK transport drive the beat grid of the real daemon.

Real parts: a private ``jackd -d dummy``, the daemon as a subprocess with its
JACK audio client, an rtmidi JACK MIDI output sending clock, a JACK-Client
timebase master, OSC over UDP for ticks and /status.
"""

from __future__ import annotations

import threading
import time

import pytest

from bridge.control.tempo import MidiClock
from tests.daw_util import median_interval, serve, wait_until
from tests.jack_util import jack_server

pytestmark = [pytest.mark.jack]


def test_midi_clock_unit_start_spp_stop() -> None:
    t = [0.0]
    clock = MidiClock(clock=lambda: t[0])
    assert clock.read(0.0) is None
    clock.feed([0xF2, 8, 0])  # song position: 8 sixteenths = beat 2
    clock.feed([0xFB])  # continue: the next clock sits at beat 2
    for i in range(25):  # 120 bpm: a clock every 1/48 s
        t[0] = i / 48
        clock.feed([0xF8])
    r = clock.read(t[0])
    assert r.rolling and r.bpm == pytest.approx(120.0)
    assert r.beat == pytest.approx(2 + 24 / 24)
    assert clock.read(t[0] + 0.25).beat == pytest.approx(3.5)  # extrapolated half a beat
    clock.feed([0xFC])
    assert not clock.read(t[0]).rolling
    clock.feed([0xFA])  # start: back to 0 on the next clock
    t[0] += 1 / 48
    clock.feed([0xF8])
    assert clock.read(t[0]).beat == 0.0
    assert not clock.feed([0x90, 60, 100])  # not ours


class ClockSender:
    """Sends MIDI Start then clocks from a thread at a tempo that can change."""

    def __init__(self, out) -> None:
        self.out = out
        self.bpm = 100.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.out.send_message([0xFA])
        self._thread.start()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self.out.send_message([0xF8])
            due += 60.0 / (24 * self.bpm)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.out.send_message([0xFC])


def test_midi_clock_drives_beat_ticks(bundled_package, tmp_path) -> None:
    import rtmidi

    with jack_server(period=256):
        out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="daw")
        out.open_virtual_port("clock")
        try:
            with serve(bundled_package, tmp_path / "daemon.log", "--audio", "jack", "--no-autoconnect",
                       "--midi", "jack", "--midi-connect", "daw:clock", "--tempo-source", "midi-clock") as (_, osc):
                osc.send("/subscribe", osc.port)
                status = osc.status()
                assert status["game"]["tempo"]["source"] == "midi-clock"
                time.sleep(0.5)
                assert not osc.ticks(), "no ticks before the DAW starts"
                sender = ClockSender(out)
                sender.start()
                t_start = time.monotonic()
                time.sleep(6.0)
                t_change = time.monotonic()
                sender.bpm = 150.0
                time.sleep(6.0)
                mid = osc.status()
                sender.stop()
                time.sleep(0.5)
                stopped_at = len(osc.ticks())
                time.sleep(1.0)
                after_stop = len(osc.ticks())
            ticks = osc.ticks()
            slow = [t for t, _ in ticks if t_start + 1.0 < t < t_change]
            fast = [t for t, _ in ticks if t_change + 1.5 < t < t_change + 6.0]
            assert len(slow) >= 6 and len(fast) >= 8, (len(slow), len(fast))
            assert median_interval(slow) == pytest.approx(0.60, abs=0.05)
            assert median_interval(fast) == pytest.approx(0.40, abs=0.05)
            beats = [a[0] for _, a in ticks]
            assert beats[0] in (0, 1) and beats == list(range(beats[0], beats[0] + len(beats)))
            tempo = mid["game"]["tempo"]
            assert tempo["bpm"] == pytest.approx(150.0, abs=6.0) and tempo["rolling"]
            assert 0.0 <= tempo["phase"] < 1.0
            assert after_stop == stopped_at, "Stop halts the ticks"
        finally:
            out.close_port()
            out.delete()


class TimebaseMaster:
    """A JACK client that is the timebase master: bar/beat/tick at a fixed tempo from the frame."""

    def __init__(self, bpm: float = 120.0, beats_per_bar: int = 4) -> None:
        import jack

        self.jack = jack
        self.bpm = bpm
        self.bpb = beats_per_bar
        self.client = jack.Client("timebase-master", no_start_server=True)
        self.client.set_timebase_callback(self._timebase)
        self.client.activate()

    def _timebase(self, state, blocksize, pos, new_pos) -> None:
        beats = pos.frame / pos.frame_rate * self.bpm / 60.0
        whole = int(beats)
        bar, beat = divmod(whole, self.bpb)
        pos.valid = pos.valid | self.jack._lib.JackPositionBBT
        pos.bar, pos.beat = bar + 1, beat + 1
        pos.ticks_per_beat = 1920.0
        pos.tick = int((beats - whole) * 1920)
        pos.bar_start_tick = bar * self.bpb * 1920.0
        pos.beats_per_bar, pos.beat_type = float(self.bpb), 4.0
        pos.beats_per_minute = self.bpm

    def frame_of_beat(self, beat: float) -> int:
        return int(round(beat * 60.0 / self.bpm * self.client.samplerate))

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def test_jack_transport_timebase_master_drives_the_grid(bundled_package, tmp_path) -> None:
    with jack_server(period=256):
        master = TimebaseMaster(bpm=120.0)
        try:
            with serve(bundled_package, tmp_path / "daemon.log", "--audio", "jack", "--no-autoconnect",
                       "--midi", "none", "--tempo-source", "jack-transport") as (_, osc):
                osc.send("/subscribe", osc.port)
                time.sleep(1.0)
                assert not osc.ticks(), "stopped transport: no ticks"
                status = osc.status()
                assert status["game"]["tempo"]["source"] == "jack-transport"
                assert status["game"]["tempo"]["bpm"] == pytest.approx(120.0)
                assert not status["game"]["tempo"]["rolling"]
                t0 = time.monotonic()
                master.client.transport_start()
                time.sleep(4.0)
                rolling = osc.status()["game"]["tempo"]
                t_reloc = time.monotonic()
                master.client.transport_frame = master.frame_of_beat(32)  # bar 9 (0-based bar 8)
                time.sleep(3.0)
                master.client.transport_stop()
                time.sleep(0.6)
                n_stop = len(osc.ticks())
                time.sleep(1.0)
                n_later = len(osc.ticks())
                bars = osc.ticks("/tick/bar")
            ticks = osc.ticks()
            before = [(t, a) for t, a in ticks if t0 < t < t_reloc]
            after = [(t, a) for t, a in ticks if t > t_reloc + 0.5]
            assert rolling["rolling"] and rolling["bpm"] == pytest.approx(120.0)
            assert median_interval([t for t, _ in before[1:]]) == pytest.approx(0.5, abs=0.05)
            assert [a[0] for _, a in before] == list(range(before[0][1][0], before[0][1][0] + len(before)))
            assert before[-1][1][0] < 12
            # the relocate: beat numbers jump to bar 8 (0-based) and count on from there
            assert 32 <= after[0][1][0] <= 34, after[:3]
            assert [a[2] for _, a in after] == [b % 4 for b in (a[0] for _, a in after)]
            assert any(a[0] == 9 for _, a in bars) or any(a[0] == 8 for _, a in bars), bars
            assert n_later == n_stop, "stopped transport: ticks stop"
        finally:
            master.close()


def test_tempo_source_in_config_and_refused_osc_tempo(bundled_package, tmp_path) -> None:
    cfg = tmp_path / "map.toml"
    cfg.write_text('[tempo]\nbpm = 150\nsource = "config"\n')
    with serve(bundled_package, tmp_path / "daemon.log", "--audio", "null", "--midi", "none",
               "--config", str(cfg)) as (_, osc):
        osc.send("/subscribe", osc.port)
        osc.send("/tempo", 60.0)
        wait_until(lambda: len(osc.ticks()) >= 6, 10.0, "six ticks")
        status = osc.status()
    assert status["game"]["tempo"]["source"] == "config" and status["game"]["bpm"] == 150.0
    assert median_interval([t for t, _ in osc.ticks()]) == pytest.approx(0.40, abs=0.05)
    text = (tmp_path / "daemon.log").read_text()
    assert "/tempo refused: the tempo comes from config" in text
    bad = tmp_path / "bad.toml"
    bad.write_text('[tempo]\nsource = "midi"\n')
    from bridge.control.mapping_config import MappingConfig

    with pytest.raises(ValueError, match="tempo.source: unknown tempo source 'midi'"):
        MappingConfig.from_toml(bad)
