"""Where the upstream Magenta RT 2 files live, on the hub and on disk.

The local layout matches upstream's ``magenta_rt.paths``: everything sits
under ``$MAGENTA_HOME/magenta-rt-v2`` (``MAGENTA_HOME`` defaults to
``~/Documents/Magenta``), and the sub-paths are the same as in the hub repo
``google/magenta-realtime-2``::

    checkpoints/mrt2_small.safetensors
    checkpoints/mrt2_base.safetensors
    resources/spectrostream/{encoder,decoder,quantizer}.safetensors
    resources/musiccoca/{spm.model,text_encoder.tflite,audio_preprocessor.tflite,
                         music_encoder.tflite,pretrained_vector_quantizer.tflite,
                         mapper.tflite}

So a folder filled by upstream's own tools is reused as is, and
``hf_hub_download(local_dir=magenta_home())`` lands files where upstream
looks for them. The environment is read at call time, not import time.
"""

from __future__ import annotations

import os
from pathlib import Path

HUB_REPO_ID = "google/magenta-realtime-2"
HUB_REVISION = "main"
HOME_SUBDIR = "magenta-rt-v2"

MUSICCOCA_SUBDIR = "resources/musiccoca"
SPECTROSTREAM_SUBDIR = "resources/spectrostream"
CHECKPOINTS_SUBDIR = "checkpoints"

MUSICCOCA_FILES = (
    "spm.model",
    "text_encoder.tflite",
    "audio_preprocessor.tflite",
    "music_encoder.tflite",
    "pretrained_vector_quantizer.tflite",
    "mapper.tflite",  # text->audio mapper (upstream's embed_style(use_mapper=True))
)


def magenta_base() -> Path:
    """``$MAGENTA_HOME``, or ``~/Documents/Magenta`` (upstream's default)."""
    env = os.environ.get("MAGENTA_HOME")
    return Path(env).expanduser() if env else Path.home() / "Documents" / "Magenta"


def magenta_home() -> Path:
    """``$MAGENTA_HOME/magenta-rt-v2``: the root that mirrors the hub repo."""
    return magenta_base() / HOME_SUBDIR


def resources_dir() -> Path:
    """Shared resources (MusicCoCa, SpectroStream)."""
    return magenta_home() / "resources"


def musiccoca_dir() -> Path:
    """Upstream's MusicCoCa TFLite files and SentencePiece vocabulary."""
    return magenta_home() / MUSICCOCA_SUBDIR


def checkpoint_path(name: str) -> Path:
    """Path of an upstream depthformer checkpoint, e.g. ``mrt2_small``."""
    return magenta_home() / CHECKPOINTS_SUBDIR / f"{name}.safetensors"


# Magenta RT v1 (hub repo ``google/magenta-realtime``). Upstream v1's ``asset.fetch`` keeps
# files under ``$MAGENTA_RT_CACHE_DIR/assets`` (default ``~/.cache/magenta_rt/assets``) with
# the hub's sub-paths, and extracts ``checkpoints/<name>.tar`` to ``checkpoints/<name>/``
# (deleting the tar); using the same root reuses a folder filled by upstream v1.
V1_HUB_REPO_ID = "google/magenta-realtime"
V1_CHECKPOINTS = {"base": "checkpoints/llm_base_x4286_c1860k", "large": "checkpoints/llm_large_x3047_c1860k"}


def v1_home() -> Path:
    """``$MAGENTA_RT_CACHE_DIR/assets``, or ``~/.cache/magenta_rt/assets`` (upstream v1's asset cache)."""
    env = os.environ.get("MAGENTA_RT_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "magenta_rt"
    return root / "assets"


def v1_checkpoint_dir(size: str) -> Path:
    """The extracted t5x checkpoint directory of v1 ``size`` (base or large)."""
    return v1_home() / V1_CHECKPOINTS[size]
