"""Write a v1 model package: the LM's ONNX graphs (+ a 16-level SpectroStream decoder) and manifest.json.

Same package format as MRT2's (``bridge/package.py``): graphs ``encoder``, ``temporal``, ``depth``
and optionally ``codec_decoder``, each with its sha256 and I/O spec; the manifest says
``"family": "v1"`` so ``render`` / ``serve`` / ``bench`` pick the v1 chunk engine.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bridge import io_names as io
from bridge.package import FORMAT, FORMAT_VERSION, file_sha256

from .. import spectrostream
from ..package_writer import (
    PRECISIONS,
    finish_package,
    int8_manifest,
    resolve_int8_scheme,
    save_graph,
    staged_package,
)
from ..precision import convert
from ..spectrostream_config import QUANTIZER_KEY, CodecConfig
from ..tensors import load_tensors
from . import config as v1
from . import graphs
from .codec import codec_config

log = logging.getLogger(__name__)

FAMILY = "v1"
CODEC_PREFIX = "params/soundstream/"


def codec_config_for(tensors: Mapping[str, np.ndarray]) -> CodecConfig:
    """The v1 codec config (:func:`onnx_export.v1.codec.codec_config`, 16 levels) whose widths ``tensors`` have."""
    table = tensors.get(QUANTIZER_KEY)
    if table is None:
        raise ValueError(f"codec weights lack {QUANTIZER_KEY}")
    for size in ("full", "tiny"):
        cfg = codec_config(size)
        if table.shape[1:] == (cfg.num_embeddings, cfg.num_features):
            return dataclasses.replace(cfg, num_quantizers=max(table.shape[0], v1.DECODER_LEVELS))
    raise ValueError(f"codec weights {QUANTIZER_KEY} {table.shape} match no known SpectroStream size")


def export_v1_package(
    checkpoint: Path,
    out_dir: Path,
    precision: str = "fp32",
    *,
    size: str | None = None,
    codec: Path | Mapping[str, np.ndarray] | None = None,
    synthetic: bool = False,
    progress: bool = True,
    int8_scheme: str = "auto",
) -> Path:
    """Export the v1 t5x checkpoint directory ``checkpoint`` as a package in ``out_dir``.

    ``size`` is checked against the checkpoint's tree (detected when None). ``codec`` is a
    safetensors file (an MRT2 checkpoint or codec file) or a dict holding
    ``params/soundstream/...`` tensors; without it the package makes tokens but no audio.
    ``int8_scheme`` as MRT2's export (``auto``: the one for this CPU).
    """
    from .checkpoint import check_params, detect_size, find_checkpoint_dir, load_params

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    int8_scheme, isa = resolve_int8_scheme(int8_scheme)
    ckpt_dir = find_checkpoint_dir(checkpoint)
    log.info("reading v1 checkpoint %s", ckpt_dir)
    params = load_params(ckpt_dir)
    if size is None:
        size = detect_size(params)
    else:
        check_params(params, size)
    spec = v1.get_size(size)
    builders = {
        io.ENCODER: lambda: graphs.build_encoder(spec, params),
        io.TEMPORAL: lambda: graphs.build_temporal(spec, params),
        io.DEPTH: lambda: graphs.build_depth(spec, params),
    }
    codec_entry = codec_source = None
    if codec is not None:
        if isinstance(codec, Mapping):
            codec_tensors = dict(codec)
        else:
            codec_tensors, codec_source = load_tensors(Path(codec)), Path(codec)
        codec_tensors = {k: v for k, v in codec_tensors.items() if k.startswith(CODEC_PREFIX)}
        codec_cfg = codec_config_for(codec_tensors)
        builders[io.CODEC_DECODER] = lambda: spectrostream.build_codec_decoder(codec_tensors, codec_cfg)
        # Upstream v1 plays the decoder's waveform as it comes (spectrostream.py ``decode``); the 0.5
        # in MRT2's entry is MRT2's own output scaling.
        codec_entry = {**spectrostream.codec_manifest_entry(codec_cfg), "output_gain": 1.0}
    else:
        log.warning("no codec weights given: the v1 package will produce tokens but no audio")

    out_dir = Path(out_dir)
    with staged_package(out_dir) as tmp:
        entries = {}
        for name, build in tqdm(builders.items(), desc=f"export v1 {size} ({precision})", disable=not progress):
            # The codec stays fp32 under int8 (its int8 variant needs a calibration this family lacks).
            graph_precision = "fp32" if (name == io.CODEC_DECODER and precision == "int8") else precision
            entries[name] = save_graph(convert(build(), graph_precision, int8_scheme), tmp / f"{name}.onnx",
                                       graph_precision, int8_scheme)

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": FAMILY,
            "model": {"family": "magenta-realtime-v1", **spec.to_dict(), "size": size},
            "precision": precision,
            **int8_manifest(precision, int8_scheme, isa),
            "synthetic": synthetic,
            "source_checkpoint": {"dir": ckpt_dir.name, "msgpack_sha256": file_sha256(ckpt_dir / "checkpoint")},
            "chunk": {
                "sample_rate": v1.SAMPLE_RATE, "channels": v1.NUM_CHANNELS, "frames": v1.CHUNK_FRAMES,
                "samples": v1.CHUNK_SAMPLES, "crossfade_samples": v1.CROSSFADE_SAMPLES,
                "context_frames": v1.CONTEXT_FRAMES, "levels": v1.DECODER_LEVELS, "codebook": v1.CODEBOOK_SIZE,
            },
            "graphs": entries,
        }
        if codec_entry is not None:
            manifest["codec"] = codec_entry
            if codec_source is not None:
                manifest["source_codec"] = {"file": codec_source.name, "sha256": file_sha256(codec_source)}
        return finish_package(tmp, out_dir, manifest)


def is_v1_checkpoint(path: Path) -> bool:
    """True when ``path`` is (or directly holds) a t5x checkpoint directory, v1's layout."""
    from .checkpoint import V1CheckpointError, find_checkpoint_dir

    try:
        find_checkpoint_dir(path)
    except V1CheckpointError:
        return False
    return True
