"""Style palettes: named styles -> precomputed 768-d embeddings (``.npz``).

Built once from a TOML file (``mrt-bridge styles build``) so that at run time a
palette style costs a lookup, and a blend costs a weighted mean::

    # palette.toml
    [styles]
    calm = "ambient piano, soft pads"            # a text prompt
    battle = { prompts = [["epic orchestral drums", 0.7], ["choir", 0.3]] }
    forest = { audio = "forest.wav" }            # audio file, relative to the TOML

The ``.npz`` holds ``names`` (str array), ``embeddings`` (float32 [n, 768])
and ``model`` (the MusicCoCa source, so a synthetic palette is recognisable).
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bridge.style.audio import read_wav

log = logging.getLogger(__name__)


def blend(embeddings: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted mean of embeddings (weights > 0; need not sum to 1)."""
    if not embeddings or len(embeddings) != len(weights):
        raise ValueError("blend: need as many weights as embeddings, at least one")
    w = np.asarray(weights, np.float64)
    if not np.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"blend: weights must be finite and > 0, got {weights}")
    stack = np.stack([np.asarray(e, np.float32).reshape(-1) for e in embeddings])
    return (w @ stack / w.sum()).astype(np.float32)


def load_palette(path: Path) -> dict[str, np.ndarray]:
    """Read a palette ``.npz`` into ``{name: embedding}``."""
    with np.load(path, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        embs = np.asarray(data["embeddings"], np.float32)
    if embs.shape[0] != len(names):
        raise ValueError(f"{path}: {len(names)} names but {embs.shape[0]} embeddings")
    return dict(zip(names, embs))


def _parse_entry(name: str, spec, base: Path) -> list[tuple[str, object, float]]:
    """Normalise one TOML entry to [(kind, value, weight)], kind 'text' or 'audio'."""
    if isinstance(spec, str):
        return [("text", spec, 1.0)]
    if isinstance(spec, dict):
        if "audio" in spec:
            return [("audio", base / spec["audio"], 1.0)]
        if "text" in spec:
            return [("text", spec["text"], 1.0)]
        if "prompts" in spec:
            out = []
            for item in spec["prompts"]:
                if not (isinstance(item, list) and len(item) == 2):
                    raise ValueError(f"style {name!r}: prompts entries are [\"text\", weight]")
                out.append(("text", str(item[0]), float(item[1])))
            return out
    raise ValueError(f"style {name!r}: expected a string, or a table with text/prompts/audio")


def build_palette(toml_path: Path, encoder, out_path: Path) -> dict[str, np.ndarray]:
    """Embed every style of ``toml_path`` with ``encoder``; write ``out_path`` (.npz)."""
    toml_path = Path(toml_path)
    try:
        doc = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{toml_path}: {exc}") from exc
    styles = doc.get("styles")
    if not isinstance(styles, dict) or not styles:
        raise ValueError(f"{toml_path}: needs a [styles] table with at least one entry")
    palette: dict[str, np.ndarray] = {}
    for name, spec in tqdm(styles.items(), desc="embedding styles", unit="style"):
        parts = _parse_entry(name, spec, toml_path.parent)
        embs, weights = [], []
        for kind, value, weight in parts:
            if kind == "text":
                embs.append(encoder.embed_text(value))
            else:
                samples, rate = read_wav(value)
                embs.append(encoder.embed_audio(samples, rate))
            weights.append(weight)
        palette[name] = blend(embs, weights)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_path, names=np.array(list(palette)),
             embeddings=np.stack(list(palette.values())),
             model=np.array(encoder.info.get("source", "")))
    log.info("wrote %d styles to %s", len(palette), out_path)
    return palette
