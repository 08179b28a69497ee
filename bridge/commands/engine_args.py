"""Engine options shared by `serve`, `render` and `bench`: guidance rows and prefill."""

from __future__ import annotations

import argparse

from bridge.conditioning import NUM_CFGS_CHOICES
from bridge.engine import DEFAULT_NUM_CFGS

NUM_CFGS_HELP = (
    "logit-level guidance rows, as upstream's live engine: 0 = guidance only as conditioning "
    "tokens (one row, cheapest), 1 = + a style-masked row, 2 = + a notes-masked row; each row "
    "mixes into the logits with its live guidance scale (default: %(default)s, upstream's)"
)
PREFILL_HELP = (
    "start (and /reset) from context: none; silence (550 frames of codec silence, as upstream's "
    "apps); audio:FILE.wav (any WAV, resampled, first 28 s, 25 frames trimmed per end); "
    "tokens:FILE.npy ([N,12] codes or model tokens, e.g. from render --tokens-out). "
    "Default: none"
)


def add_engine_args(p: argparse.ArgumentParser, prefill: bool = True) -> None:
    """Add ``--num-cfgs`` (and ``--prefill``) to a subcommand's parser."""
    p.add_argument("--num-cfgs", type=int, choices=NUM_CFGS_CHOICES, default=DEFAULT_NUM_CFGS, help=NUM_CFGS_HELP)
    if prefill:
        p.add_argument("--prefill", metavar="none|silence|audio:FILE|tokens:FILE.npy", help=PREFILL_HELP)
