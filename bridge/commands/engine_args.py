"""Engine options shared by `serve`, `render` and `bench`: guidance rows and prefill."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.conditioning import NUM_CFGS_CHOICES
from bridge.engine import DEFAULT_NUM_CFGS
from bridge.prefill import PrefillSpec, parse_prefill

NUM_CFGS_HELP = (
    "logit-level guidance rows, as upstream's live engine: 0 = guidance only as conditioning "
    "tokens (one row, cheapest), 1 = + a style-masked row, 2 = + a notes-masked row; each row "
    f"mixes into the logits with its live guidance scale (default: the config's num_cfgs, else "
    f"{DEFAULT_NUM_CFGS}, upstream's)"
)
PREFILL_HELP = (
    "start (and /reset) from context: none; silence (550 frames of codec silence, as upstream's "
    "apps); audio:FILE.wav (any WAV, resampled, first 28 s, 25 frames trimmed per end); "
    "tokens:FILE.npy ([N,12] codes or model tokens, e.g. from render --tokens-out). "
    "Default: the config's prefill, else none"
)


def add_engine_args(p: argparse.ArgumentParser, prefill: bool = True) -> None:
    """Add ``--num-cfgs`` (and ``--prefill``) to a subcommand's parser."""
    p.add_argument("--num-cfgs", type=int, choices=NUM_CFGS_CHOICES, help=NUM_CFGS_HELP)
    if prefill:
        p.add_argument("--prefill", metavar="none|silence|audio:FILE|tokens:FILE.npy", help=PREFILL_HELP)


def engine_options(args: argparse.Namespace, config: Path | None) -> tuple[int, PrefillSpec | None]:
    """(num_cfgs, prefill) from the flags, else the mapping config's keys, else the defaults.

    Checks files and values before anything starts.
    """
    from bridge.control.mapping_config import MappingConfig

    cfg = MappingConfig.from_toml(config) if config is not None else None
    num_cfgs = args.num_cfgs
    if num_cfgs is None:
        num_cfgs = cfg.num_cfgs if cfg is not None and cfg.num_cfgs is not None else DEFAULT_NUM_CFGS
    prefill = getattr(args, "prefill", None)
    spec = parse_prefill(prefill) if prefill else (cfg.prefill if cfg is not None else None)
    return num_cfgs, (None if spec is None or spec.kind == "none" else spec)
