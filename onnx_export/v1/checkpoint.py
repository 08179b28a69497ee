"""Reading and writing Magenta RT v1 checkpoints in t5x's native layout (no JAX, TensorStore or t5x needed).

A v1 checkpoint is the directory upstream's hub tar ``checkpoints/llm_{base,large}_*.tar``
extracts to, written by ``t5x.checkpoints.Checkpointer`` (t5x ``checkpoints.py``, VERSION 3)::

    <dir>/checkpoint                     msgpack (flax.serialization) of
                                         {"version": 3, "optimizer": {"target": params,
                                          "state": {"step": ..., "param_states": adafactor}}}
    <dir>/target.encoder.layers_0.attention.query.kernel/
        .zarray, 0.0, ...                zarr v2 array (TensorStore "zarr" driver)

Leaves of the msgpack tree are either arrays (flax's msgpack ext type 1: shape, dtype
name, C-order bytes) or TensorStore spec dicts naming the zarr directory (``kvstore.path``
or the top-level ``path`` for GCS-written specs, the parameter path joined with ".").
t5x writes partitioned leaves (parameters, unfactored Adafactor ``v``) to zarr and the
rest (step, ``v_row``/``v_col``, momentum placeholders) inline.

``load_params`` returns the parameters as a flat dict keyed by their t5x path joined with
"/" (``encoder/layers_0/attention/query/kernel``), in float32. ``write_checkpoint_dir``
writes the same layout, with the zero Adafactor state a freshly initialised t5x
``InteractiveModel`` expects (t5x restores strictly: every optimizer leaf must exist).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from ..tensors import CheckpointError
from . import config as v1

T5X_CHECKPOINT_VERSION = 3
MSGPACK_FILE = "checkpoint"
_EXT_NDARRAY = 1  # flax.serialization._MsgpackExtType
_EXT_NPSCALAR = 3
_CHUNK_BYTES = 64 * 1024 * 1024  # t5x _DESIRED_CHUNK_SIZE_BYTES
_ADAFACTOR_MIN_DIM_TO_FACTOR = 128  # t5x adafactor.Adafactor default
_SEP = "/"


class V1CheckpointError(CheckpointError):
    """A directory is not a readable v1 (t5x) checkpoint, or does not match the expected tree."""


# ---------------------------------------------------------------------------
# The parameter tree of upstream's MagentaRTEncoderDecoderModel (flaxformer names).
# ---------------------------------------------------------------------------


def param_shapes(size: v1.V1Size | str) -> dict[str, tuple[int, ...]]:
    """Every parameter of the v1 LM of ``size``: t5x path -> shape (checked against upstream's init)."""
    s = v1.get_size(size) if isinstance(size, str) else size
    d, h, n, f = s.embed_dim, s.head_dim, s.num_heads, s.mlp_dim
    shapes: dict[str, tuple[int, ...]] = {"token_embedder/embedding": (s.num_embeddings, d)}

    def attention(prefix: str) -> None:
        for proj in ("query", "key", "value"):
            shapes[f"{prefix}/{proj}/kernel"] = (d, n * h)
        shapes[f"{prefix}/out/kernel"] = (n * h, d)

    def mlp(prefix: str) -> None:
        shapes[f"{prefix}/wi_0/kernel"] = (d, f)
        shapes[f"{prefix}/wi_1/kernel"] = (d, f)
        shapes[f"{prefix}/wo/kernel"] = (f, d)

    for i in range(s.num_encoder_layers):
        p = f"encoder/layers_{i}"
        attention(f"{p}/attention")
        mlp(f"{p}/mlp")
        shapes[f"{p}/pre_attention_layer_norm/scale"] = (d,)
        shapes[f"{p}/pre_mlp_layer_norm/scale"] = (d,)
    shapes["encoder/encoder_norm/scale"] = (d,)

    def decoder_layer(p: str, cross: bool) -> None:
        attention(f"{p}/self_attention")
        shapes[f"{p}/pre_self_attention_layer_norm/scale"] = (d,)
        if cross:
            attention(f"{p}/encoder_decoder_attention")
            shapes[f"{p}/pre_cross_attention_layer_norm/scale"] = (d,)
        mlp(f"{p}/mlp")
        shapes[f"{p}/pre_mlp_layer_norm/scale"] = (d,)

    for i in range(s.num_temporal_layers):
        decoder_layer(f"decoder/decoder/temporal_decoder/layers_{i}", cross=True)
    for i in range(s.num_depth_layers):
        decoder_layer(f"decoder/decoder/depth_decoder/depth_layers_{i}", cross=False)
    shapes["decoder/decoder/temporal_decoder/relpos_bias/rel_embedding"] = (n, v1.TEMPORAL_RELPOS_BUCKETS)
    shapes["decoder/decoder/depth_decoder/relpos_bias_depth/rel_embedding"] = (n, v1.DEPTH_RELPOS_BUCKETS)
    shapes["decoder/decoder_norm/scale"] = (d,)
    shapes["decoder/logits_dense/kernel"] = (d, s.num_embeddings)
    return dict(sorted(shapes.items()))


def check_params(params: Mapping[str, np.ndarray], size: v1.V1Size | str) -> None:
    """Raise V1CheckpointError unless ``params`` has exactly the names and shapes of ``size``."""
    want = param_shapes(size)
    missing = sorted(set(want) - set(params))
    extra = sorted(set(params) - set(want))
    wrong = sorted(k for k in set(want) & set(params) if tuple(params[k].shape) != want[k])
    if missing or extra or wrong:
        name = size if isinstance(size, str) else size.name
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (first {extra[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with the wrong shape (first {k}: {tuple(params[k].shape)} != {want[k]})")
        raise V1CheckpointError(f"not a v1 {name} checkpoint: " + "; ".join(parts))


def detect_size(params: Mapping[str, np.ndarray]) -> str:
    """The v1 size whose tree ``params`` matches exactly (raises V1CheckpointError if none)."""
    for name in v1.SIZES:
        try:
            check_params(params, name)
            return name
        except V1CheckpointError:
            continue
    raise V1CheckpointError("the parameters match no v1 size (tiny, base, large)")


# ---------------------------------------------------------------------------
# flax msgpack
# ---------------------------------------------------------------------------


def _ext_hook(code: int, data: bytes):
    import msgpack

    if code == _EXT_NDARRAY:
        shape, dtype_name, buf = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buf, dtype=_dtype(dtype_name)).reshape(shape)
    if code == _EXT_NPSCALAR:
        dtype_name, buf = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buf, dtype=_dtype(dtype_name))[0]
    raise V1CheckpointError(f"unsupported msgpack extension type {code} in the checkpoint file")


def _default(obj):
    import msgpack

    if isinstance(obj, np.ndarray):
        payload = msgpack.packb((obj.shape, obj.dtype.name, obj.tobytes("C")), use_bin_type=True)
        return msgpack.ExtType(_EXT_NDARRAY, payload)
    if isinstance(obj, np.generic):
        payload = msgpack.packb((obj.dtype.name, obj.tobytes()), use_bin_type=True)
        return msgpack.ExtType(_EXT_NPSCALAR, payload)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        return np.dtype([("bf16", "<u2")])  # decoded to float32 by _bf16_to_f32
    return np.dtype(name)


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    bits = raw.view("<u2") if raw.dtype.fields else raw.astype("<u2")
    return (bits.astype(np.uint32) << 16).view(np.float32)


def read_msgpack(path: Path) -> dict:
    """The raw tree of a t5x ``checkpoint`` file."""
    import msgpack

    try:
        with open(path, "rb") as fp:
            return msgpack.unpackb(fp.read(), ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as e:
        raise V1CheckpointError(f"{path}: not a t5x msgpack checkpoint file ({e})") from e


# ---------------------------------------------------------------------------
# zarr v2 arrays (what TensorStore's zarr driver writes)
# ---------------------------------------------------------------------------


def _zarr_dtype(meta_dtype) -> tuple[np.dtype, bool]:
    if meta_dtype == "bfloat16":
        return np.dtype("<u2"), True
    if isinstance(meta_dtype, list):
        raise V1CheckpointError(f"structured zarr dtype {meta_dtype!r} is not supported")
    return np.dtype(meta_dtype), False


def _decompress(raw: bytes, compressor: dict | None, where: Path) -> bytes:
    if compressor is None:
        return raw
    cid = compressor.get("id")
    if cid == "gzip":
        return gzip.decompress(raw)
    if cid == "zlib":
        return zlib.decompress(raw)
    if cid == "zstd":
        try:
            import zstandard
        except ImportError as e:
            raise V1CheckpointError(f"{where}: zstd-compressed array; pip install zstandard to read it") from e
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    raise V1CheckpointError(f"{where}: unsupported zarr compressor {cid!r}")


def read_zarr(array_dir: Path) -> np.ndarray:
    """A zarr v2 array directory as a numpy array (bfloat16 is widened to float32)."""
    meta_path = array_dir / ".zarray"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise V1CheckpointError(f"{meta_path}: missing or unreadable zarr metadata ({e})") from e
    shape = tuple(meta["shape"])
    chunks = tuple(meta["chunks"])
    dtype, is_bf16 = _zarr_dtype(meta["dtype"])
    order = meta.get("order", "C")
    sep = meta.get("dimension_separator", ".")
    fill = meta.get("fill_value")
    out = np.zeros(shape, dtype=dtype)
    if fill not in (None, 0):
        out[...] = fill
    grid = [-(-s // c) for s, c in zip(shape, chunks)] if shape else []
    for idx in np.ndindex(*grid) if grid else [()]:
        key = sep.join(str(i) for i in idx) if idx else "0"
        chunk_path = array_dir / key
        if not chunk_path.exists():
            continue  # never written: stays at fill_value
        data = _decompress(chunk_path.read_bytes(), meta.get("compressor"), chunk_path)
        block = np.frombuffer(data, dtype=dtype)
        if block.size != int(np.prod(chunks)):
            raise V1CheckpointError(f"{chunk_path}: {block.size} elements, expected {int(np.prod(chunks))}")
        block = block.reshape(chunks, order=order)
        sl = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))
        out[sl] = block[tuple(slice(0, x.stop - x.start) for x in sl)]
    if is_bf16:
        return _bf16_to_f32(out)
    return out


def choose_chunk_shape(shape: tuple[int, ...], itemsize: int) -> list[int]:
    """t5x ``_choose_chunk_shape``: the largest divisor grid under 64 MiB, largest dims split first."""
    target = max(1, _CHUNK_BYTES // itemsize)
    factors = [[i for i in range(1, s + 1) if s % i == 0] for s in shape]
    while int(np.prod([f[-1] for f in factors])) > target:
        dim = max(range(len(shape)), key=lambda i: (factors[i][-1], -i))
        factors[dim].pop()
    return [f[-1] for f in factors]


def write_zarr(array_dir: Path, arr: np.ndarray) -> dict:
    """Write ``arr`` as a gzip zarr v2 array; returns the TensorStore spec t5x stores in the msgpack."""
    arr = np.ascontiguousarray(arr)
    chunks = choose_chunk_shape(arr.shape, arr.dtype.itemsize)
    array_dir.mkdir(parents=True)
    meta = {
        "chunks": chunks,
        "compressor": {"id": "gzip", "level": 1},
        "dimension_separator": ".",
        "dtype": arr.dtype.str,
        "fill_value": None,
        "filters": None,
        "order": "C",
        "shape": list(arr.shape),
        "zarr_format": 2,
    }
    (array_dir / ".zarray").write_text(json.dumps(meta, indent=2))
    grid = [s // c for s, c in zip(arr.shape, chunks)]
    for idx in np.ndindex(*grid):
        sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks))
        block = np.ascontiguousarray(arr[sl])
        (array_dir / ".".join(map(str, idx))).write_bytes(gzip.compress(block.tobytes(), compresslevel=1, mtime=0))
    return {
        "driver": "zarr",
        "dtype": arr.dtype.name,
        "kvstore": {"driver": "file", "path": array_dir.name},
        "metadata": {"chunks": chunks, "compressor": {"id": "gzip"}, "shape": list(arr.shape)},
    }


# ---------------------------------------------------------------------------
# The checkpoint directory
# ---------------------------------------------------------------------------


def find_checkpoint_dir(path: Path | str) -> Path:
    """The directory holding the ``checkpoint`` file: ``path`` itself, its one ``checkpoint_*`` child, or its parent."""
    p = Path(path)
    if p.is_file() and p.name == MSGPACK_FILE:
        return p.parent
    if (p / MSGPACK_FILE).is_file():
        return p
    if p.is_dir():
        inner = sorted(c for c in p.iterdir() if c.is_dir() and (c / MSGPACK_FILE).is_file())
        if len(inner) == 1:
            return inner[0]
    raise V1CheckpointError(f"{p}: not a t5x checkpoint directory (no '{MSGPACK_FILE}' file)")


def _is_spec(leaf) -> bool:
    return isinstance(leaf, dict) and "driver" in leaf and ("kvstore" in leaf or "path" in leaf)


def _walk(tree, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if isinstance(tree, dict) and not _is_spec(tree):
        for k, v in tree.items():
            yield from _walk(v, (*prefix, str(k)))
    else:
        yield prefix, tree


def _spec_dir(ckpt_dir: Path, spec: dict) -> Path:
    kv = spec.get("kvstore")
    rel = kv.get("path") if isinstance(kv, dict) else None
    rel = rel or spec.get("path")
    if not rel:
        raise V1CheckpointError(f"{ckpt_dir}: tensorstore spec without a path: {spec}")
    rel = Path(rel.rstrip("/"))
    if rel.is_absolute() or not (ckpt_dir / rel).is_dir():
        rel = Path(rel.name)  # specs from other machines keep only the last component usable
    return ckpt_dir / rel


def load_params(path: Path | str) -> dict[str, np.ndarray]:
    """The parameters (``optimizer/target``) of a v1 t5x checkpoint, flat, keyed ``a/b/c``, float32."""
    ckpt_dir = find_checkpoint_dir(path)
    tree = read_msgpack(ckpt_dir / MSGPACK_FILE)
    version = tree.get("version", 0) if isinstance(tree, dict) else 0
    if version < 2 or "optimizer" not in tree:
        raise V1CheckpointError(f"{ckpt_dir}: t5x checkpoint version {version} has no 'optimizer' tree")
    target = tree["optimizer"].get("target")
    if not isinstance(target, dict) or not target:
        raise V1CheckpointError(f"{ckpt_dir}: the checkpoint has no parameters (optimizer/target)")
    params: dict[str, np.ndarray] = {}
    for keys, leaf in _walk(target):
        arr = read_zarr(_spec_dir(ckpt_dir, leaf)) if _is_spec(leaf) else np.asarray(leaf)
        if arr.dtype.fields:  # inline bfloat16
            arr = _bf16_to_f32(arr)
        params[_SEP.join(keys)] = arr.astype(np.float32, copy=False)
    return params


def _adafactor_state(arr: np.ndarray) -> dict:
    """t5x Adafactor ``init_param_state`` (factored heuristic, no momentum): zeros."""
    z1 = np.zeros((1,), np.float32)
    state = {"v_row": z1, "v_col": z1, "v": z1, "m": z1}
    shape = arr.shape
    if len(shape) >= 2:
        order = np.argsort(shape, kind="stable")
        if shape[order[-2]] >= _ADAFACTOR_MIN_DIM_TO_FACTOR:
            d1, d0 = int(order[-2]), int(order[-1])
            state["v_row"] = np.zeros(np.delete(shape, d0), np.float32)
            state["v_col"] = np.zeros(np.delete(shape, d1), np.float32)
            return state
    state["v"] = np.zeros(shape, np.float32)
    return state


def _nest(flat: Mapping[str, object]) -> dict:
    root: dict = {}
    for key, value in flat.items():
        node = root
        *parents, leaf = key.split(_SEP)
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return root


def write_checkpoint_dir(
    params: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]], out_dir: Path | str, step: int = 0
) -> Path:
    """Write ``params`` (flat ``a/b/c`` keys; a mapping or lazy ``(key, array)`` pairs) as a t5x checkpoint, atomically.

    Parameters and unfactored Adafactor ``v`` go to zarr, like t5x; everything is
    written under a temporary sibling directory that is renamed into place at the end,
    so ``out_dir`` is either absent, the old checkpoint, or the complete new one.
    """
    import msgpack

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        target: dict[str, object] = {}
        states: dict[str, object] = {}
        pairs = sorted(params.items()) if isinstance(params, Mapping) else params
        for key, value in pairs:
            arr = np.asarray(value, dtype=np.float32)
            dotted = key.replace(_SEP, ".")
            target[key] = write_zarr(tmp / f"target.{dotted}", arr)
            st = _adafactor_state(arr)
            if st["v"].shape != (1,):
                st["v"] = write_zarr(tmp / f"state.param_states.{dotted}.v", st["v"])
            states[key] = st
        tree = {
            "version": T5X_CHECKPOINT_VERSION,
            "optimizer": {
                "target": _nest(target),
                "state": {"step": np.asarray(step, dtype=np.int32), "param_states": _nest(states)},
            },
        }
        (tmp / MSGPACK_FILE).write_bytes(msgpack.packb(tree, default=_default, use_bin_type=True))
        os.chmod(tmp, 0o755)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
