"""Dump upstream v1's SpectroStream (TF SavedModels) codebooks and its decode of given codes.

Runs in the v1 oracle env with upstream v1's own ``spectrostream.SpectroStreamSavedModel``
reading ``savedmodels/ssv2_48k_stereo/{decoder,quantizer}`` from an asset folder laid out like
upstream's cache (``mrt-bridge models download v1_resources`` fills one):

    .venv-v1-oracle/bin/python tests/oracle_v1/v1_codec_dump.py --assets ~/.cache/magenta_rt/assets \\
        --codes codes.npy --out dump.npz

Writes ``codebooks`` (64, 1024, 256) and ``audio`` (frames * 1920, 2) float32. Used by
tests/oracle_v1/compare_codec.py.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from _common import quiet_logs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", required=True, type=Path, help="folder holding savedmodels/ssv2_48k_stereo/")
    ap.add_argument("--codes", required=True, type=Path, help=".npy (frames, levels) int codes")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    assets = args.assets.expanduser().resolve()
    if not (assets / "savedmodels" / "ssv2_48k_stereo" / "decoder").is_dir():
        raise SystemExit(f"{assets}/savedmodels/ssv2_48k_stereo/decoder is missing")
    if assets.name != "assets":
        raise SystemExit(f"{assets}: upstream's cache layout is <cache>/assets/savedmodels/...")
    os.environ["MAGENTA_RT_CACHE_DIR"] = str(assets.parent)  # asset.fetch then finds everything cached
    quiet_logs()
    from magenta_rt import spectrostream

    codec = spectrostream.SpectroStreamSavedModel(lazy=True)
    codes = np.load(args.codes).astype(np.int32)
    audio = codec.decode(codes).samples
    np.savez(args.out, codebooks=codec.rvq_codebooks.astype(np.float32), audio=np.asarray(audio, np.float32))


if __name__ == "__main__":
    main()
