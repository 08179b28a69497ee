"""`mrt-bridge render`: offline generation to a WAV file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from bridge import FRAME_MS, FRAME_RATE
from bridge.commands.engine_args import add_engine_args, engine_options

log = logging.getLogger("mrt-bridge")


def _tokens(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected 12 comma-separated integers") from None
    if len(values) != 12 or not all(0 <= v < 1024 for v in values):
        raise argparse.ArgumentTypeError("expected 12 comma-separated codes in 0..1023")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="generate audio offline to a WAV file",
        description=(
            "Generate audio offline, deterministically for a given seed. Without events, notes and "
            "drums are masked and guidance is the preset's (default: style 3.0, notes 1.0, drums 1.0). "
            "An events file (JSON Lines: {\"frame\"|\"time\": N, \"address\": \"/osc/address\", "
            "\"args\": [...]}) uses the live daemon's OSC vocabulary, so live sessions can be re-rendered."
        ),
    )
    p.add_argument("--model", type=Path, help="model package (default: the bundled synthetic model)")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--frames", type=int, help="number of 40 ms frames")
    length.add_argument("--seconds", type=float, help="length in seconds (25 frames per second)")
    p.add_argument("--out", required=True, type=Path, help="output WAV (48 kHz, stereo, 16-bit)")
    p.add_argument("--events", type=Path, help="JSON Lines file of timed control events")
    p.add_argument("--config", type=Path, help="game mapping TOML (for /game, /state, /trigger events)")
    p.add_argument("--style-tokens", type=_tokens, metavar="t1,...,t12", help="12 MusicCoCa style codes")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature, 0 = greedy (default: the preset's, 1.3)")
    p.add_argument("--top-k", type=int, default=None, help="top-k (default: the preset's, 40)")
    p.add_argument("--guidance", type=float, default=None,
                   help="Magenta RT v1 packages: classifier-free guidance weight (default 5.0, upstream's)")
    from bridge import presets

    p.add_argument("--preset", choices=presets.NAMES, default=None,
                   help="behaviour and defaults as one, as `serve --preset` ('upstream-app': upstream's "
                        "app semantics and defaults); default: the config's `preset`, else 'default'")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--tokens-out", type=Path, help="save codec codes as int .npy of shape (frames, 12)")
    p.add_argument("--trace-out", type=Path, help="save each frame's 144-int conditioning as .npy")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda"])
    add_engine_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bridge import presets
    from bridge.control.state import ControlState
    from bridge.engine import Engine
    from bridge.prefill import apply_prefill, current_guidance
    from bridge.render import check_writable, load_events, render, validate_events, write_wav
    from bridge.synthetic import NOTICE, bundled_package
    from bridge.v1.engine import is_v1_package

    if args.model is not None and is_v1_package(args.model):
        from bridge.v1.commands import render_v1

        return render_v1(args)
    if args.guidance is not None:
        raise ValueError("--guidance is for v1 packages; MRT2 guidance comes from --preset / --config")
    frames = args.frames if args.frames is not None else int(round(args.seconds * FRAME_RATE))
    if frames <= 0:
        raise ValueError("nothing to render: --frames/--seconds must be positive")
    if (args.temperature is not None and not 0 <= args.temperature <= 3) or \
            (args.top_k is not None and not 1 <= args.top_k <= 1024):
        raise ValueError("--temperature must be in 0..3 and --top-k in 1..1024")
    check_writable(args.out)
    for extra in (args.tokens_out, args.trace_out):
        if extra is not None:
            check_writable(extra)
    preset = presets.resolve(args.preset, args.config)
    events = load_events(args.events) if args.events else []
    num_cfgs, prefill = engine_options(args, args.config)
    config = None
    if args.config:
        from bridge.control.mapping_config import MappingConfig, check_palette_prompts

        config = MappingConfig.from_toml(args.config)
        check_palette_prompts(config, None, args.config)  # render takes no --palette
    model = args.model
    if model is None:
        model = bundled_package()
    engine = Engine(model, args.provider, seed=args.seed, num_cfgs=num_cfgs)
    if engine.is_synthetic:
        print(NOTICE)
    from bridge.style.service import service_for_package

    styles = service_for_package(engine.package.root, use_mapper=preset.use_mapper)
    try:
        validate_events(events, config, styles)  # every event checked before frame 0
    except ValueError:
        if styles is not None:
            styles.close()
        raise
    control = ControlState(style_resolver=styles)
    preset.apply(control)
    control.set_seed_base(args.seed)
    if args.temperature is not None:
        control.set_temperature(args.temperature)
    if args.top_k is not None:
        control.set_top_k(args.top_k)
    if args.style_tokens:
        control.set_style_tokens(np.array(args.style_tokens))
    if prefill is not None:
        apply_prefill(engine, prefill, current_guidance(control))
    mapper = None
    if config is not None:
        from bridge.control.mapping import GameMapper

        mapper = GameMapper(config, control, preset=preset.name)
        control.add_frame_hook(mapper.advance)  # as in the daemon: RTPCs, states and triggers move per frame
    try:
        result = render(engine, frames, control, events, mapper=mapper, styles=styles)
    finally:
        if styles is not None:
            styles.close()
    write_wav(args.out, result.audio)
    if args.tokens_out:
        np.save(args.tokens_out, result.codes)
    if args.trace_out:
        np.save(args.trace_out, result.conditioning)
    t = np.array(result.timings_ms) if result.timings_ms else np.zeros(1)
    print(
        f"wrote {args.out}: {frames} frames ({frames / FRAME_RATE:.2f} s), model {engine.package.size}"
        f"{' (synthetic)' if engine.is_synthetic else ''}, seed {args.seed}, guidance rows {engine.rows}"
        f"{f', prefill {prefill}' if prefill else ''}; "
        f"step p50 {np.percentile(t, 50):.1f} ms, p99 {np.percentile(t, 99):.1f} ms "
        f"({FRAME_MS / max(np.percentile(t, 50), 1e-6):.2f}x real time at p50)"
    )
    return 0
