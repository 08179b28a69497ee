"""`mrt-bridge serve --streams N`: the options check and wiring of the multi-stream daemon."""

from __future__ import annotations

import argparse
import logging

from bridge.stop_flag import StopFlag

log = logging.getLogger("mrt-bridge.serve")

# Options of the single-stream daemon that --streams does not take (yet), with the reason.
UNSUPPORTED = (
    ("config", "--config (the game mapping drives one stream)"),
    ("web", "--web (the studio shows one stream)"),
    ("trace", "--trace"),
    ("prefill", "--prefill"),
    ("midi_connect", "--midi-connect (MIDI drives one stream)"),
    ("tempo_source", "--tempo-source (the beat grid belongs to the game mapping)"),
    ("record", "--record"),
    ("input_device", "--input-device (live input feeds one stream)"),
)


def check_args(args: argparse.Namespace) -> None:
    """Refuse what --streams cannot do, before anything loads (one clear line each)."""
    from bridge.daemon.stream_host import MAX_STREAMS
    from bridge.daemon.streams import check_ports

    n = args.streams
    if not 1 <= n <= MAX_STREAMS:
        raise ValueError(f"--streams must be 1..{MAX_STREAMS}, got {n}")
    if args.open_streams is not None and not 0 <= args.open_streams <= n:
        raise ValueError(f"--open-streams must be 0..{n} (the --streams count), got {args.open_streams}")
    for attr, name in UNSUPPORTED:
        if getattr(args, attr, None) not in (None, False, "none"):
            raise ValueError(f"{name} is not supported with --streams")
    if args.audio not in ("null", "jack"):
        raise ValueError("--streams plays every stream on its own PCM port (--pcm-port BASE: stream i on "
                         f"BASE+i), not on an audio device; drop --audio {args.audio} or use --audio null")
    if args.midi not in ("auto", "none"):
        raise ValueError("--streams takes control over OSC (/stream/<id>/...), not MIDI; drop --midi")
    if args.pcm_port is None:
        raise ValueError("--streams needs --pcm-port BASE: stream i streams PCM on tcp://127.0.0.1:BASE+i")
    check_ports(args.pcm_port, n)
    if args.ws_port is not None and not 0 <= args.ws_port <= 65535:
        raise ValueError(f"--ws-port must be 0..65535 (0 picks a free port), got {args.ws_port}")


def run_streams(args: argparse.Namespace, opts, stop: StopFlag) -> int:
    """Serve ``args.streams`` streams (``opts``: the daemon's ServeOptions) until ``stop`` is set."""
    from bridge import presets
    from bridge.daemon.multi_app import MultiDaemon
    from bridge.daemon.stream_host import HostOptions

    preset = presets.get(opts.preset)
    log.info("preset %s for every stream: %s", preset.name, preset.summary)
    host = HostOptions(
        model=opts.model, streams=args.streams,
        open_streams=args.streams if args.open_streams is None else args.open_streams,
        provider=opts.provider, threads=opts.threads, num_cfgs=opts.num_cfgs, buffer_frames=opts.buffer_frames,
        pcm_base=opts.pcm_port, preset=opts.preset, palette=opts.palette, overlap=opts.overlap,
        ws_port=args.ws_port,
    )
    return MultiDaemon(host, opts.osc_host, opts.osc_port).run(stop)
