"""Write a model package: ONNX graphs + manifest.json, from an upstream MRT2 checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from bridge import io_names as io
from bridge.package import FORMAT, FORMAT_VERSION, file_sha256

from ..package_writer import (
    PRECISIONS,
    finish_package,
    int8_manifest,
    resolve_int8_scheme,
    save_graph,
    staged_package,
)
from ..precision import convert
from ..tensors import load_tensors
from . import checkpoint as ck
from . import depthformer
from .configs import get_config

log = logging.getLogger(__name__)

def export_package(
    checkpoint: Path,
    size: str,
    out_dir: Path,
    precision: str = "fp32",
    *,
    codec_encoder: Path | None = None,
    synthetic: bool = False,
    progress: bool = True,
    int8_scheme: str = "auto",
) -> Path:
    """Export ``checkpoint`` (upstream layout) as a model package in ``out_dir``.

    ``codec_encoder`` is upstream's ``resources/spectrostream/encoder.safetensors``
    (``params/encoder/...``); with it the package also gets the streaming codec
    encoder (audio -> codes), which shares the checkpoint's RVQ codebooks.
    ``int8_scheme`` (int8 only): ``rows`` or ``blocks`` (``onnx_export.precision``), or
    ``auto``: the one for this CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    int8_scheme, isa = resolve_int8_scheme(int8_scheme)
    cfg = get_config(size)
    checkpoint = Path(checkpoint)
    log.info("reading %s as %s", checkpoint, size)
    weights = ck.load_depthformer(checkpoint, cfg)
    out_dir = Path(out_dir)
    with staged_package(out_dir) as tmp:

        builders = {
            io.ENCODER: lambda: depthformer.build_encoder(cfg, weights),
            io.TEMPORAL: lambda: depthformer.build_temporal(cfg, weights),
            io.DEPTH: lambda: depthformer.build_depth(cfg, weights),
        }
        codec_entry = None
        if any(k.startswith("params/soundstream/") for k in weights):
            from .. import spectrostream

            codec_cfg = spectrostream.codec_config(cfg.codec)
            builders[io.CODEC_DECODER] = lambda: spectrostream.build_codec_decoder(weights, codec_cfg)
            codec_entry = spectrostream.codec_manifest_entry(codec_cfg)
            if codec_encoder is not None:
                from .. import spectrostream_encoder as sse

                enc_weights = load_tensors(codec_encoder)
                enc_weights = {k: v for k, v in enc_weights.items() if k.startswith("params/encoder/")}
                enc_weights.update({k: v for k, v in weights.items() if k.startswith("params/soundstream/quantizer/")})
                builders[io.CODEC_ENCODER] = lambda: sse.build_codec_encoder(enc_weights, codec_cfg)
                codec_entry["encoder"] = sse.codec_encoder_manifest_entry(codec_cfg)
        else:
            log.warning("%s has no soundstream/ tensors: package will produce tokens but no audio", checkpoint.name)

        graphs = {}
        for name, build in tqdm(builders.items(), desc=f"export {size} ({precision})", disable=not progress):
            model = build()
            path = tmp / f"{name}.onnx"
            check = None
            if name == io.CODEC_DECODER and precision == "int8":
                from ..codec_int8 import choose_int8_codec_decoder

                model, check = choose_int8_codec_decoder(model, weights, codec_cfg)
                graph_precision, scheme = check["precision"], None
            else:
                # The codec encoder stays fp32 under int8 (prefill only; its codes are argmins).
                graph_precision = "fp32" if (name.startswith("codec") and precision == "int8") else precision
                scheme = int8_scheme
                model = convert(model, graph_precision, scheme)
            entry = save_graph(model, path, graph_precision, scheme)
            if check is not None:
                entry["precision_check"] = check
            graphs[name] = entry

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {"family": "magenta-realtime-2", **cfg.to_dict(), "size": size},
            "precision": precision,
            **int8_manifest(precision, int8_scheme, isa),
            "synthetic": synthetic,
            "source_checkpoint": {"file": checkpoint.name, "sha256": file_sha256(checkpoint)},
            "frame": {"sample_rate": 48000, "samples": 1920, "channels": 2, "tokens": 12, "codebook": 1024},
            "graphs": graphs,
        }
        if codec_entry is not None:
            manifest["codec"] = codec_entry
        if io.CODEC_ENCODER in builders:
            manifest["source_codec_encoder"] = {"file": Path(codec_encoder).name, "sha256": file_sha256(codec_encoder)}
        return finish_package(tmp, out_dir, manifest)
