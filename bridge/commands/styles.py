"""`mrt-bridge styles`: build style palettes, embed and tokenize prompts."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "styles",
        help="build style palettes (named prompts -> embeddings) and try prompts",
        description=(
            "Style prompts are embedded with MusicCoCa (text or audio -> 768-d) and turned "
            "into 12 style tokens. A palette precomputes named styles so the live daemon "
            "blends them with a lookup ('palette:NAME' in a prompt slot)."
        ),
    )
    ssub = p.add_subparsers(dest="styles_command", metavar="ACTION")
    ssub.required = True

    b = ssub.add_parser("build", help="embed the styles of a palette TOML into an .npz",
                        description="TOML format: see bridge/style/palette.py or the README.")
    b.add_argument("toml", type=Path, help="palette definition, e.g. palette.toml")
    b.add_argument("--model", type=Path, default=None,
                   help="model package with musiccoca/ (default: the bundled synthetic one)")
    b.add_argument("--out", type=Path, default=None, help="output .npz (default: TOML name + .npz)")
    b.set_defaults(func=run_build)

    t = ssub.add_parser("tokens", help="print the 12 style tokens of a weighted blend")
    t.add_argument("prompts", nargs="+",
                   help="'text', 'text=WEIGHT', 'palette:NAME' or 'palette:NAME=WEIGHT'")
    t.add_argument("--model", type=Path, default=None, help="model package (default: synthetic)")
    t.add_argument("--palette", type=Path, default=None, help="palette .npz for palette:NAME")
    t.set_defaults(func=run_tokens)

    ls = ssub.add_parser("list", help="list the styles in a palette .npz")
    ls.add_argument("palette", type=Path)
    ls.set_defaults(func=run_list)


def _encoder(model: Path | None):
    from bridge.style.encoder import StyleEncoder

    if model is None:
        from bridge.synthetic import bundled_package

        model = bundled_package()
        log.warning("using the bundled SYNTHETIC model: styles are random, not MusicCoCa")
    return StyleEncoder.from_package(model)


def _parse_slot(arg: str) -> tuple[str, float]:
    text, sep, weight = arg.rpartition("=")
    if sep:
        try:
            return text, float(weight)
        except ValueError:
            pass
    return arg, 1.0


def run_build(args: argparse.Namespace) -> int:
    from bridge.style.palette import build_palette

    if not args.toml.is_file():
        raise FileNotFoundError(f"palette definition not found: {args.toml}")
    out = args.out or args.toml.with_suffix(".npz")
    palette = build_palette(args.toml, _encoder(args.model), out)
    print(f"wrote {len(palette)} styles to {out}: {', '.join(palette)}")
    return 0


def run_tokens(args: argparse.Namespace) -> int:
    from bridge.style.palette import load_palette
    from bridge.style.service import StyleService

    palette = load_palette(args.palette) if args.palette else {}
    service = StyleService(_encoder(args.model), palette)
    try:
        tokens = service.resolve([_parse_slot(a) for a in args.prompts])
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from exc
    finally:
        service.close()
    print(" ".join(str(int(t)) for t in tokens))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from bridge.style.palette import load_palette

    if not args.palette.is_file():
        raise FileNotFoundError(f"palette not found: {args.palette}")
    for name, emb in load_palette(args.palette).items():
        print(f"{name:<24} |e|={float(np.linalg.norm(emb)):.3f}")
    return 0
