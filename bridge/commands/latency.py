"""`mrt-bridge latency`: measure control-to-output latency end to end through JACK."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.daemon.frame_loop import DEFAULT_BUFFER_FRAMES

DESCRIPTION = """\
Measure how long a control change takes to be heard: the real daemon runs on a
JACK server (a private `jackd -d dummy` unless --server names one), a probe
records its output with JACK frame times, and each repeat sends a change (OSC
or MIDI) at a random moment and finds the first output sample that differs
from an offline render of the same seed without the change. Prints each repeat
and p50/p95 in ms. The sound card's own playback latency (as JACK reports it)
comes on top for the ear and is printed beside it.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="measure control-to-ear latency through JACK (p50/p95)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="model package (default: the bundled synthetic model)")
    p.add_argument("--repeats", type=int, default=10, help="changes to time (default: %(default)s)")
    p.add_argument("--via", choices=("osc", "midi"), default="osc",
                   help="send the change over OSC (UDP) or MIDI (JACK, mrt-bridge:midi_in); default: %(default)s")
    p.add_argument("--change", choices=("style", "volume", "note"),
                   help="what changes: style (OSC /style/tokens; the model's tokens change), volume (OSC "
                        "/volume or MIDI CC 7) or note (note-on; the bundled synthetic model ignores notes). "
                        "Default: style via OSC, volume via MIDI")
    p.add_argument("--buffer-frames", type=int, default=DEFAULT_BUFFER_FRAMES, metavar="N",
                   help="the daemon's --buffer-frames (default: %(default)s)")
    p.add_argument("--period", type=int, default=256,
                   help="JACK period (frames) of the private dummy server (default: %(default)s)")
    p.add_argument("--server", metavar="NAME", help="use this running JACK server instead of a private one")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads")
    p.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--overlap", choices=("auto", "on", "off"), default="auto",
                   help="the daemon's --overlap: codec one frame behind on a second thread (default: %(default)s)")
    p.add_argument("--no-overlap", dest="overlap", action="store_const", const="off", help="same as --overlap off")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bridge.latency_probe import measure

    model = args.model
    if model is None:
        from bridge.synthetic import NOTICE, bundled_package

        print(NOTICE)
        model = bundled_package()
    if args.buffer_frames < 1:
        raise ValueError("--buffer-frames must be at least 1")
    change = args.change or ("style" if args.via == "osc" else "volume")
    r = measure(model, repeats=args.repeats, buffer_frames=args.buffer_frames, via=args.via, change=change,
                period=args.period, server=args.server, seed=args.seed, threads=args.threads,
                provider=args.provider, overlap={"auto": None, "on": True, "off": False}[args.overlap])
    for f in r.failures:
        print(f"  not measured: {f}")
    print("  each (ms): " + " ".join(f"{v:.1f}" for v in r.latencies_ms))
    print(f"{change} change via {args.via} -> first changed sample at the JACK output, buffer {r.buffer_frames} frames"
          f"{', codec overlapped' if r.overlap else ', codec in line'}, "
          f"JACK period {r.period} @ {r.rate} Hz, {len(r.latencies_ms)} of {args.repeats} repeats: "
          f"p50 {r.percentile(50):.1f} ms, p95 {r.percentile(95):.1f} ms"
          + (f" (daemon states {r.stated_ms:.0f} ms)" if r.stated_ms is not None else ""))
    if r.playback_ms:
        print(f"to the ear add the playback latency JACK reports for the sound card: {r.playback_ms:.1f} ms")
    # a repeat spoiled by an underrun (a loaded machine) is reported above, not fatal
    return 0 if len(r.latencies_ms) * 2 >= args.repeats else 1
