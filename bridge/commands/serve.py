"""`mrt-bridge serve`: the live daemon (OSC + MIDI in, audio out)."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from bridge.commands.engine_args import add_engine_args, engine_options
from bridge.daemon.frame_loop import DEFAULT_BUFFER_FRAMES
from bridge.stop_flag import stop_on_signals

log = logging.getLogger("mrt-bridge.serve")

EPILOG = """\
examples:
  mrt-bridge serve                              # bundled synthetic model, JACK out, OSC on 127.0.0.1:9000
  mrt-bridge serve --model models/mrt2_small --audio device:BlackHole
  mrt-bridge serve --audio null --pcm-port 9100 # no sound card: stream PCM into a game engine
  mrt-bridge serve --audio wav:session.wav --midi none --trace frames.jsonl
  mrt-bridge serve --config examples/adaptive_soundtrack.toml
  mrt-bridge serve --preset upstream-app --audio device   # upstream's app: its knobs and note/style semantics
  mrt-bridge serve --midi-connect "a2j:Keystation"   # also take notes from an existing MIDI port
  mrt-bridge serve --audio null --web --config examples/adaptive_soundtrack.toml
                                                # browser studio on http://127.0.0.1:8080/ (audio in the page)
  mrt-bridge serve --streams 4 --pcm-port 9100  # 4 independent streams from one batched engine:
                                                # OSC /stream/<id>/..., PCM of stream i on port 9100+i

Control latency is about buffer-frames x 40 ms plus one audio block.
Stop with Ctrl-C (or SIGTERM): it drains the buffered audio and exits cleanly.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the live daemon: OSC/MIDI control in, continuous audio out",
        description="Generate music continuously from a model package, controlled over OSC "
                    "(games) and MIDI (DAWs, keyboards), played through JACK, a sound device, "
                    "a WAV file or a PCM stream for game engines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", type=Path, metavar="PKG",
                   help="model package directory (from `mrt-bridge models prepare` or `export`); "
                        "default: the bundled SYNTHETIC tiny model (noise, not music)")
    p.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="game-state mapping (RTPCs, states, triggers, tempo); "
                        "see examples/adaptive_soundtrack.toml")
    p.add_argument("--palette", type=Path, metavar="FILE.npz",
                   help="named styles for /style/palette and palette:NAME prompts "
                        "(built with `mrt-bridge styles build`)")
    p.add_argument("--osc-host", default="127.0.0.1",
                   help="address the OSC (UDP) server listens on (default: %(default)s; "
                        "0.0.0.0 to accept other machines)")
    p.add_argument("--osc-port", type=int, default=9000, help="OSC UDP port (default: %(default)s)")
    p.add_argument("--audio", default="jack", metavar="jack|device[:NAME]|wav:PATH|null",
                   help="audio output: a running JACK server (client 'mrt-bridge', ports out_L/out_R); "
                        "the default PortAudio device or the first whose name contains NAME; "
                        "a 48 kHz WAV file recorded in real time; or null (no sound, real-time pacing). "
                        "Default: %(default)s")
    p.add_argument("--midi", default="auto", choices=("auto", "jack", "alsa", "none"),
                   help="MIDI input port 'mrt-bridge:midi_in' through JACK or ALSA (with --audio jack "
                        "and JACK MIDI it is a port of the audio client); auto = JACK with --audio "
                        "jack, else ALSA, and carry on without MIDI if unavailable "
                        "(default: %(default)s)")
    p.add_argument("--midi-connect", metavar="NAME",
                   help="also connect the first existing MIDI output port whose name contains NAME "
                        "(e.g. a keyboard or a DAW's output) to the MIDI input")
    p.add_argument("--buffer-frames", type=int, default=DEFAULT_BUFFER_FRAMES, metavar="N",
                   help="frames (40 ms each) generated ahead of playback: more = safer against "
                        "dropouts, less = faster response (default: %(default)s, about 120 ms; the codec overlap adds one frame when it is on)")
    p.add_argument("--pcm-port", type=int, metavar="N",
                   help="also stream 48 kHz stereo float32 PCM on tcp://127.0.0.1:N for in-game "
                        "playback (format: docs/pcm-stream.md)")
    p.add_argument("--web", type=int, nargs="?", const=8080, metavar="PORT",
                   help="also serve the browser studio on http://127.0.0.1:PORT/ (default port 8080): "
                        "every control of the OSC address table, the mapping's sliders and buttons, a "
                        "keyboard, meters, a piano roll of the conditioning, the audio in the page and "
                        "downloads of the session (events and WAV)")
    p.add_argument("--web-host", metavar="ADDRESS",
                   help="address the studio listens on (default: 127.0.0.1; 0.0.0.0 lets other machines "
                        "in, with no password)")
    p.add_argument("--trace", type=Path, metavar="FILE",
                   help="write one JSON line per frame: time, conditioning, step time, play time")
    p.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda"),
                   help="ONNX Runtime execution provider (default: %(default)s)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="ONNX Runtime intra-op threads of the model graphs (default: min(cores - 1, 4), at "
                        "least 1, so the codec keeps a core; the depth decoder takes the codec's threads too in frames "
                        "where no decode runs beside it; with --streams min(cores, 4))")
    p.add_argument("--no-autoconnect", dest="jack_autoconnect", action="store_false",
                   help="with --audio jack, do not connect out_L/out_R to system:playback_*")
    add_engine_args(p)
    p.add_argument("--overlap", choices=("auto", "on", "off"), default="auto",
                   help="decode audio on a second thread one frame behind the model step: nearly halves "
                        "the frame time on 2 cores for 40 ms more latency. auto (default): only when the "
                        "first frames take more than half a frame in line")
    p.add_argument("--no-overlap", dest="overlap", action="store_const", const="off", help="same as --overlap off")
    from bridge import presets

    p.add_argument("--preset", choices=presets.NAMES, default=None,
                   help="behaviour and defaults as one: 'default' (this project's) or 'upstream-app' "
                        "(upstream's apps: temperature 1.1, top-k 50, guidance 1.6/2.4/4.0, Mask onset "
                        "mode, unmask width 0, style tail masking, piano style until the first prompt, "
                        "text->audio mapper, seed rotation 0); default: the config's `preset`, else "
                        "'default'. The README compares them")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop by itself after this many seconds (demos, scripted recordings); "
                        "default: run until Ctrl-C / SIGTERM")
    p.add_argument("--tempo-source", choices=("config", "osc", "midi-clock", "jack-transport"),
                   help="where the beat grid (quantised changes, /tick/beat and /tick/bar) comes from: "
                        "the config's [tempo]; that plus /tempo over OSC; a DAW's MIDI clock on "
                        "mrt-bridge:midi_in; or the JACK transport's timebase master "
                        "(default: the config's [tempo] source, else osc)")
    p.add_argument("--record", type=Path, metavar="DIR",
                   help="record the take into DIR: events.jsonl (control changes with frame numbers, "
                        "render's format), out.wav and codes.jsonl; `mrt-bridge render --events "
                        "DIR/events.jsonl` reproduces it offline")
    p.add_argument("--input-device", metavar="NAME",
                   help="with --audio device: live input from the first input device whose name contains "
                        "NAME (default: the default input). With --audio jack the input is "
                        "mrt-bridge:in_L/in_R. Mixed in by /input/amount or [audio_in] amount")
    p.add_argument("--streams", type=int, metavar="N",
                   help="serve N independent streams (ids 0..N-1) from one batched engine: each has its own "
                        "controls at OSC /stream/<id>/... (docs/osc-api.md), seed and model state, and plays "
                        "on its own PCM port (--pcm-port BASE: stream i on BASE+i; no audio device). "
                        "/stream/open asks for a free stream and is refused when all N are open")
    p.add_argument("--open-streams", type=int, metavar="K",
                   help="with --streams: how many streams (ids 0..K-1) play from the start; the others wait "
                        "for /stream/<id>/open (default: all N)")
    p.add_argument("--ws-port", type=int, metavar="P",
                   help="with --streams: also stream each stream's PCM over WebSocket at "
                        "ws://127.0.0.1:P/stream/<id> (same packets as its TCP port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bridge import presets
    from bridge.daemon.app import Daemon, ServeOptions
    from bridge.daemon.inputs import ControlInputs, build_control
    from bridge.engine import Engine

    model = args.model
    if model is None:
        from bridge.synthetic import NOTICE, bundled_package
        log.warning(NOTICE)
        model = bundled_package()
    opts = ServeOptions(
        model=model, audio=args.audio, midi=args.midi, osc_host=args.osc_host, osc_port=args.osc_port,
        buffer_frames=args.buffer_frames, pcm_port=args.pcm_port, trace=args.trace,
        provider=args.provider, config=args.config, palette=args.palette,
        jack_autoconnect=args.jack_autoconnect, threads=args.threads,
        midi_connect=args.midi_connect, overlap={"auto": None, "on": True, "off": False}[args.overlap],
        preset=presets.resolve(args.preset, args.config).name,
        web_port=args.web, web_host=args.web_host or "127.0.0.1",
        tempo_source=args.tempo_source, record=args.record, input_device=args.input_device,
    )
    streams = getattr(args, "streams", None)
    if streams is not None:
        from bridge.commands.serve_streams import check_args
        check_args(args)
    elif getattr(args, "open_streams", None) is not None:
        raise ValueError("--open-streams needs --streams N")
    elif getattr(args, "ws_port", None) is not None:
        raise ValueError("--ws-port needs --streams N (one stream: --web serves its audio to a page)")
    opts.num_cfgs, prefill = engine_options(args, args.config)
    if opts.buffer_frames < 1:
        raise ValueError("--buffer-frames must be at least 1")
    if args.web_host is not None and args.web is None:
        raise ValueError("--web-host needs --web [PORT]")
    if args.web is not None and not 0 <= args.web <= 65535:
        raise ValueError(f"--web PORT must be 0..65535 (0 picks a free port), got {args.web}")
    from bridge.audio.sinks import parse_audio_spec
    from bridge.prefill import apply_prefill, current_guidance
    kind, arg = parse_audio_spec(opts.audio)  # fail on a typo before loading the model
    if kind == "wav":
        from bridge.audio.sinks.wav import check_wav_path
        check_wav_path(arg)

    def make_engine() -> Engine:
        engine = Engine(opts.model, provider=opts.provider, threads=opts.threads, num_cfgs=opts.num_cfgs)
        log.info("model %s on %s%s, %d guidance rows", opts.model, engine.provider,
                 " (SYNTHETIC)" if engine.is_synthetic else "", engine.rows)
        return engine

    def make_control(engine: Engine):
        control = build_control(opts, engine)
        if prefill is not None:
            apply_prefill(engine, prefill, current_guidance(control),
                          progress=lambda done, total: log.info("prefill: %d/%d frames", done, total))
        return control

    stop = stop_on_signals(log)  # SIGINT/SIGTERM; never an Event set from a handler (see bridge.stop_flag)
    if args.duration is not None:
        if args.duration <= 0:
            raise ValueError("--duration must be positive")
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    from bridge.v1.engine import is_v1_package
    if is_v1_package(opts.model):
        from bridge.v1.serve import serve_v1
        return serve_v1(args, opts, stop)
    if streams is not None:
        from bridge.commands.serve_streams import run_streams
        return run_streams(args, opts, stop)
    return Daemon(opts, make_engine, make_control, ControlInputs()).run(stop)
