"""Writing a model package: graphs saved deterministically, manifest entries, the staging folder.

Shared by the model families' exporters (``onnx_export.mrt2.export``, ``onnx_export.v1.export``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx

from bridge.bench import machine
from bridge.package import MANIFEST, file_sha256

from .precision import INT8_SCHEMES, choose_int8_scheme

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


def resolve_int8_scheme(int8_scheme: str) -> tuple[str, list[str]]:
    """(scheme, this CPU's ISA): ``auto`` becomes the int8 scheme for this CPU; others are checked."""
    isa = machine()["isa"]
    if int8_scheme == "auto":
        int8_scheme = choose_int8_scheme(isa)
    if int8_scheme not in INT8_SCHEMES:
        raise ValueError(f"unknown int8 scheme {int8_scheme!r}; expected auto or one of {', '.join(INT8_SCHEMES)}")
    return int8_scheme, isa


def int8_manifest(precision: str, int8_scheme: str, isa: list[str]) -> dict:
    """The manifest's ``int8`` record (the package's scheme and the CPU it was chosen for); empty unless int8."""
    return {"int8": {"scheme": int8_scheme, "prepared_on_isa": isa}} if precision == "int8" else {}


def save_graph(model: onnx.ModelProto, path: Path, precision: str, int8_scheme: str | None = None) -> dict:
    """Save ``model`` at ``path``; its manifest entry (file, sha256, precision, I/O spec, weights side file,
    and the ``int8_scheme`` its matmuls took when ``precision`` is int8 and one is given)."""
    data = _save(model, path)
    entry = {"file": path.name, "sha256": file_sha256(path), "precision": precision, **_io_spec(model)}
    if precision == "int8" and int8_scheme is not None:
        entry["int8_scheme"] = int8_scheme
    if data is not None:
        entry |= {"data_file": data.name, "data_sha256": file_sha256(data)}
    return entry


@contextmanager
def staged_package(out_dir: Path) -> Iterator[Path]:
    """A fresh staging folder beside ``out_dir`` for a package being written (its own name, so
    two exports never share one); removed if the export fails, so nothing half-written stays."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a package is an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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



