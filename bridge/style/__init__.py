"""Style from words and sounds: MusicCoCa embeddings, RVQ tokens, palettes, worker service."""

from bridge.style.encoder import StyleEncoder
from bridge.style.palette import blend, build_palette, load_palette
from bridge.style.rvq import rvq_decode, rvq_tokenize
from bridge.style.service import StyleService

__all__ = [
    "StyleEncoder", "StyleService", "blend", "build_palette", "load_palette",
    "rvq_decode", "rvq_tokenize",
]
