"""Write a model package: ONNX graphs + manifest.json, from an upstream MRT2 checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import onnx
from tqdm import tqdm

from bridge import io_names as io
from bridge.bench import machine
from bridge.package import FORMAT, FORMAT_VERSION, MANIFEST, file_sha256

from . import checkpoint as ck
from . import depthformer
from .configs import get_config
from .precision import INT8_SCHEMES, choose_int8_scheme, convert, graph_int8_scheme

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


def _io_spec(model: onnx.ModelProto) -> dict:
    def spec(values):
        out = {}
        for v in values:
            t = v.type.tensor_type
            out[v.name] = {
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim],
            }
        return out

    return {"inputs": spec(model.graph.input), "outputs": spec(model.graph.output)}


# Protobuf cannot serialize a message of 2 GiB or more; keep some headroom.
INLINE_LIMIT = (2 << 30) - (64 << 20)


def _save(model: onnx.ModelProto, path: Path) -> Path | None:
    """Save deterministically (same graph -> same bytes); return the weights side file, if any.

    Graphs over the protobuf limit (mrt2_base fp32 temporal) keep their weights
    in ``<graph>.onnx.data`` beside the graph.
    """
    if model.ByteSize() < INLINE_LIMIT:
        path.write_bytes(model.SerializeToString(deterministic=True))
        return None
    data = path.with_name(path.name + ".data")
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)
    return data


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
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    builders = {
        io.ENCODER: lambda: depthformer.build_encoder(cfg, weights),
        io.TEMPORAL: lambda: depthformer.build_temporal(cfg, weights),
        io.DEPTH: lambda: depthformer.build_depth(cfg, weights),
    }
    codec_entry = None
    if any(k.startswith("params/soundstream/") for k in weights):
        from . import spectrostream

        codec_cfg = spectrostream.codec_config(cfg.codec)
        builders[io.CODEC_DECODER] = lambda: spectrostream.build_codec_decoder(weights, codec_cfg)
        codec_entry = spectrostream.codec_manifest_entry(codec_cfg)
        if codec_encoder is not None:
            from . import spectrostream_encoder as sse

            enc_weights = ck.load_tensors(codec_encoder)
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
            from .codec_int8 import choose_int8_codec_decoder

            model, check = choose_int8_codec_decoder(model, weights, codec_cfg)
            graph_precision = check["precision"]
        else:
            # The codec encoder stays fp32 under int8 (prefill only; its codes are argmins).
            graph_precision = "fp32" if (name.startswith("codec") and precision == "int8") else precision
            model = convert(model, graph_precision, graph_int8_scheme(name, int8_scheme))
        entry = save_graph(model, path, graph_precision)
        if graph_precision == "int8" and not name.startswith("codec"):
            entry["int8_scheme"] = graph_int8_scheme(name, int8_scheme)
        if check is not None:
            entry["precision_check"] = check
        graphs[name] = entry

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"family": "magenta-realtime-2", **cfg.to_dict(), "size": size},
        "precision": precision,
        **({"int8": {"scheme": int8_scheme, "prepared_on_isa": isa}} if precision == "int8" else {}),
        "synthetic": synthetic,
        "source_checkpoint": {"file": checkpoint.name, "sha256": ck.sha256_file(checkpoint)},
        "frame": {"sample_rate": 48000, "samples": 1920, "channels": 2, "tokens": 12, "codebook": 1024},
        "graphs": graphs,
    }
    if codec_entry is not None:
        manifest["codec"] = codec_entry
    if io.CODEC_ENCODER in builders:
        manifest["source_codec_encoder"] = {"file": Path(codec_encoder).name, "sha256": ck.sha256_file(codec_encoder)}
    return finish_package(tmp, out_dir, manifest)


def resolve_int8_scheme(int8_scheme: str) -> tuple[str, list[str]]:
    """(scheme, this CPU's ISA): ``auto`` becomes the int8 scheme for this CPU; others are checked."""
    isa = machine()["isa"]
    if int8_scheme == "auto":
        int8_scheme = choose_int8_scheme(isa)
    if int8_scheme not in INT8_SCHEMES:
        raise ValueError(f"unknown int8 scheme {int8_scheme!r}; expected auto or one of {', '.join(INT8_SCHEMES)}")
    return int8_scheme, isa


def save_graph(model: onnx.ModelProto, path: Path, precision: str) -> dict:
    """Save ``model`` at ``path``; its manifest entry (file, sha256, precision, I/O spec, weights side file)."""
    data = _save(model, path)
    entry = {"file": path.name, "sha256": file_sha256(path), "precision": precision, **_io_spec(model)}
    if data is not None:
        entry |= {"data_file": data.name, "data_sha256": file_sha256(data)}
    return entry


def finish_package(tmp: Path, out_dir: Path, manifest: dict) -> Path:
    """Write ``manifest.json`` into the staging folder ``tmp`` and move it into place as ``out_dir``."""
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
    log.info("wrote %s", out_dir)
    return out_dir


def package_digest(out_dir: Path) -> str:
    """One hash over every file of a package (for determinism checks)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(Path(out_dir).rglob("*")):
        if path.is_file():
            h.update(path.relative_to(out_dir).as_posix().encode())
            h.update(file_sha256(path).encode())
    return h.hexdigest()



