"""Control inputs of the daemon: control state, game mapping, OSC server, MIDI input.

Kept apart from the daemon's audio side so each can be tested alone; the
daemon only needs ``build_control`` and ``start_inputs`` (or a
:class:`ControlInputs`, whose ``prepare`` validates the config and binds the
OSC port before any audio output is opened, so a broken config or a busy port
fails before anything is written).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bridge.audio.sinks import Sink
from bridge.control.state import ControlState
from bridge.control.tempo import DEFAULT_SOURCE
from bridge.quiet import quiet_stderr

from .app import Closeable, ServeOptions

log = logging.getLogger(__name__)


class _Stopper:
    """Adapts something with ``stop()`` to the daemon's ``close()``."""

    def __init__(self, what, name: str) -> None:
        self.what = what
        self.name = name

    def close(self) -> None:
        self.what.stop()

    def __repr__(self) -> str:
        return self.name


def build_control(opts: ServeOptions, engine) -> ControlState:
    """The control state (preset applied), with the package's style service when it has one."""
    from bridge import presets
    from bridge.style.service import service_for_package

    control = ControlState()
    preset = presets.get(opts.preset)
    preset.apply(control)
    log.info("preset %s: %s", preset.name, preset.summary)
    resolver = service_for_package(engine.package.root, opts.palette, use_mapper=preset.use_mapper)
    if resolver is not None:
        control.set_style_resolver(resolver)
    return control


def load_config(opts: ServeOptions):
    """The --config mapping, validated (including its palette:NAME prompts against --palette)."""
    from bridge.control.mapping_config import MappingConfig, check_palette_prompts

    config = MappingConfig.from_toml(opts.config)
    names = None
    if opts.palette is not None:
        from bridge.style.palette import load_palette
        names = set(load_palette(opts.palette))
    check_palette_prompts(config, names, opts.config)
    return config


class ControlInputs:
    """The daemon's inputs factory: ``prepare`` before audio opens, then call it to start."""

    def __init__(self) -> None:
        self.config = None
        self.osc_sock = None

    def prepare(self, opts: ServeOptions) -> None:
        """Validate --config and --palette and bind the OSC port; raise with one clear line."""
        from bridge.control.osc_server import bind_osc_socket

        if opts.config is not None:
            self.config = load_config(opts)
        self.osc_sock = bind_osc_socket(opts.osc_host, opts.osc_port)

    def __call__(self, opts: ServeOptions, control: ControlState, status_provider: Callable[[], dict],
                 sink: Sink | None = None, web=None, daw=None) -> list[Closeable]:
        sock, self.osc_sock = self.osc_sock, None
        try:
            return start_inputs(opts, control, status_provider, sink, web, daw, config=self.config, osc_sock=sock)
        except BaseException:
            if sock is not None:
                sock.close()
            raise

    def close(self) -> None:
        """Release what ``prepare`` took if the inputs never started."""
        if self.osc_sock is not None:
            self.osc_sock.close()
            self.osc_sock = None


def start_inputs(opts: ServeOptions, control: ControlState,
                 status_provider: Callable[[], dict], sink: Sink | None = None,
                 web=None, daw=None, *, config=None, osc_sock=None) -> list[Closeable]:
    """Start the game mapper (with --config), the OSC server and MIDI input; return closers.

    ``sink``: the daemon's open audio sink; with a JACK sink and JACK MIDI the
    MIDI input port is registered on the sink's own client. ``web``: the bound
    WebStudio of ``--web``; its page messages go through the OSC server's dispatch.
    ``daw``: the DawControls the OSC table reaches (MIDI learn is filled in here).
    ``config`` and ``osc_sock``: already loaded / bound by :meth:`ControlInputs.prepare`.
    """
    from bridge.control.osc_server import OscServer

    started: list[Closeable] = []
    mapper = None
    ticks: list[Callable] = []

    def on_tick(kind: str, beat: int, bar: int, in_bar: int) -> None:
        for tick in ticks:
            tick(kind, beat, bar, in_bar)

    if opts.config is not None:
        from bridge.control.mapping import GameMapper

        if config is None:
            config = load_config(opts)

        def on_tick(kind: str, beat: int, bar: int, in_bar: int) -> None:
            for tick in ticks:
                tick(kind, beat, bar, in_bar)

        mapper = GameMapper(config, control, on_tick=on_tick, preset=opts.preset)
        log.info("game mapping from %s: %d RTPCs, %d states, %d triggers, %d MIDI CCs", opts.config,
                 len(config.rtpcs), len(config.states), len(config.triggers),
                 len(config.midi.get("cc", {})))
        if config.input_amount is not None:
            if daw is not None and daw.audio_in is not None:
                daw.audio_in.set_amount(config.input_amount)
            else:
                log.warning("[audio_in] amount ignored: no live audio input")
    tempo_name = opts.tempo_source or (config.tempo_source if config is not None else None) or DEFAULT_SOURCE
    if mapper is None and tempo_name != DEFAULT_SOURCE:
        # No mapping file, but a beat grid is wanted (ticks, /status): an empty mapping carries it.
        from bridge.control.mapping import GameMapper
        from bridge.control.mapping_config import MappingConfig

        mapper = GameMapper(MappingConfig(prompts=()), control, on_tick=on_tick, preset=opts.preset)
    taps: list = []
    if mapper is not None:
        source = _tempo_source(opts, tempo_name, sink, taps)
        if source is not None:
            started.append(source)
        # the frame being made is heard after the frames ahead of it (+1 in an overlapped codec) and a block
        ahead = opts.buffer_frames + (1 if opts.overlap else 0)
        lookahead = ahead * 0.04 + (sink.latency_frames() / sink.samplerate if sink else 0.0)
        mapper.set_tempo_source(tempo_name, source, lookahead)
        control.add_frame_hook(mapper.advance)
        log.info("tempo from %s", tempo_name)
    from bridge.control.daw import DawControls
    from bridge.control.midi_learn import MidiLearn

    daw = daw or DawControls()
    learn = MidiLearn(mapper, opts.config)
    taps.append(learn.attach)
    if daw.recorder is not None:  # last: it applies what the other taps leave
        taps.append(lambda handler: handler.add_tap(daw.recorder.midi_tap(handler)))
    try:
        osc = OscServer(control, mapper, status_provider, host=opts.osc_host, port=opts.osc_port, daw=daw,
                        sock=osc_sock)
        osc.start()
        ticks.append(osc.send_tick)
        started.append(_Stopper(osc, "osc-server"))
        if web is not None:
            web.attach(osc, control, mapper)
            web.start()
            started.append(web)
        midi = _start_midi(opts, control, mapper, config, sink, taps)
        if midi is not None:
            started.append(midi)
            daw.learn = learn
    except BaseException:
        for item in started:
            item.close()
        raise
    return started


def _midi_mapping(mapper, config, preset: str = "default") -> dict:
    """MidiHandler keyword arguments from the mapping file's [midi] table (the preset's without one)."""
    from bridge import presets

    drum_channel = presets.get(preset).drum_channel
    if config is None:
        return {"mapper": mapper, "drum_channel": drum_channel}
    from bridge.control.midi_in import parse_cc_map

    cc = config.midi.get("cc")
    return {
        "mapper": mapper,
        "drum_channel": config.midi_drum_channel(drum_channel),
        # No [midi.cc] in the file keeps the built-in map (CC 7 = volume).
        "cc_map": None if cc is None else parse_cc_map(cc),
    }


def _tempo_source(opts: ServeOptions, name: str, sink: Sink | None, taps: list):
    """The external tempo source ``name`` names (None for config/osc); MIDI clock adds to ``taps``
    (callables that attach to the MIDI handler before its port opens)."""
    from bridge.control import tempo

    if name == "midi-clock":
        if opts.midi == "none":
            raise RuntimeError("--tempo-source midi-clock needs MIDI input; drop --midi none")
        clock = tempo.MidiClock()
        taps.append(lambda handler: handler.add_tap(clock.feed, timing=True))
        return clock
    if name == "jack-transport":
        from bridge.audio.sinks.jack_sink import JackSink

        return tempo.JackTransport(sink.client if isinstance(sink, JackSink) else None)
    return None


def _start_midi(opts: ServeOptions, control: ControlState, mapper, config=None,
                sink: Sink | None = None, taps: list = ()) -> Closeable | None:
    mode = opts.midi
    if mode == "none":
        if opts.midi_connect:
            raise RuntimeError("--midi-connect needs MIDI input; drop --midi none")
        return None
    from bridge.audio.sinks import parse_audio_spec
    from bridge.audio.sinks.jack_sink import JackSink
    from bridge.control.midi_in import JackClientMidiInput, MidiInput

    audio_kind = parse_audio_spec(opts.audio)[0]
    api = mode if mode != "auto" else ("jack" if audio_kind == "jack" else "alsa")
    kwargs = _midi_mapping(mapper, config, opts.preset)
    try:
        if api == "jack" and isinstance(sink, JackSink):
            # One JACK client for audio and MIDI: the port is exactly mrt-bridge:midi_in.
            midi = JackClientMidiInput(control, sink, connect=opts.midi_connect, **kwargs)
        else:
            midi = MidiInput(control, api=api, connect=opts.midi_connect, **kwargs)
        for attach in taps:
            attach(midi.handler)
        with quiet_stderr(f"MIDI ({api})"):  # alsa-lib/libjack print raw errors before ours
            midi.start()
    except (RuntimeError, OSError) as exc:
        if mode == "auto" and not opts.midi_connect:
            log.warning("no MIDI input (%s); continuing without MIDI (--midi none silences this)", exc)
            return None
        raise RuntimeError(str(exc)) from exc
    return _Stopper(midi, "midi-in")
