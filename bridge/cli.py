"""The ``mrt-bridge`` command line: one subcommand per module in bridge/commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each module exposes ``register(subparsers)`` and sets ``func`` on its parser.
COMMAND_MODULES = (
    "synth_checkpoint",
    "export",
    "render",
    "serve",
    "models",
    "styles",
    "bench",
    "latency",
    "scale",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrt-bridge",
        description=(
            "Serve Magenta RealTime 2 live from ONNX Runtime: export upstream checkpoints "
            "to model packages, render offline, or run the live OSC/MIDI daemon."
        ),
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"bridge.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Expected user-facing failures: one clear line, no traceback.
        logging.getLogger("mrt-bridge").debug("failure", exc_info=True)
        print(f"mrt-bridge {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
