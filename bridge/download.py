"""Download upstream Magenta RT 2 files from the Hugging Face hub, verified.

What gets fetched is described by the manifests in ``models/*.json`` (one per
downloadable unit: ``mrt2_small``, ``mrt2_base``, ``resources``), each listing
hub paths with an optional ``size`` and ``sha256``. Files land in upstream's
local layout (:mod:`bridge.hub_layout`), so an existing upstream folder is
reused. Magenta RT v1 manifests (``v1_base``, ``v1_large``, ``v1_resources``:
``"home": "v1"``) use upstream v1's asset cache instead, and two more entry
kinds: ``"tar"`` (a checkpoint archive, extracted like upstream's
``asset.fetch``) and ``"dir"`` (a SavedModel folder, listed from the hub once).

Verification, per file:

* a known ``sha256`` in the manifest is the expected hash;
* where the manifest has ``null``, the hub's LFS ETag (which *is* the sha256 of
  an LFS file) is used instead, fetched with one HEAD request;
* a file whose hash was checked is recorded in
  ``<home>/.cache/mrt-bridge/verified.json`` (size, mtime, sha256), so later
  runs skip it without hashing or any request.

A file that fails its check is deleted (with the hub client's metadata for
it), and :class:`ChecksumError` says which file, what was expected, and what
arrived. Partial downloads resume: ``huggingface_hub`` keeps an
``.incomplete`` file, retries a dropped connection with an HTTP ``Range``
request, and picks the same file up again on the next run.

``HF_TOKEN`` and ``HF_ENDPOINT`` are read at call time.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from bridge import hub_layout

log = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_VERIFIED_CACHE = Path(".cache") / "mrt-bridge" / "verified.json"
_HASH_CHUNK = 8 << 20
_DEFAULT_MANIFEST_DIR = Path(__file__).resolve().parents[1] / "models"


class ChecksumError(RuntimeError):
    """A downloaded or present file does not match its expected sha256."""


@dataclass(frozen=True)
class HubFile:
    """One file of the hub repo: its path there (= path under MAGENTA home).

    ``kind`` "dir" is a folder (e.g. a TF SavedModel) whose files are listed from the hub
    once; "tar" is an archive extracted to its path without ``.tar`` (then deleted), as
    upstream v1's ``asset.fetch(..., extract_archive=True)`` does.
    """

    path: str
    size: int | None = None
    sha256: str | None = None
    kind: str = "file"


@dataclass(frozen=True)
class ModelManifest:
    """A downloadable unit, as described by ``models/<name>.json``."""

    name: str
    description: str
    files: tuple[HubFile, ...]
    needs: tuple[str, ...] = ()
    repo_id: str = hub_layout.HUB_REPO_ID
    revision: str = hub_layout.HUB_REVISION
    home: str = "v2"  # local root: "v2" = magenta_home(), "v1" = hub_layout.v1_home()


_HOMES = {"v2": hub_layout.magenta_home, "v1": hub_layout.v1_home}
_KINDS = ("file", "dir", "tar")
_DIR_MARKER = ".mrt-bridge-files.json"  # in a downloaded folder: its verified file list
_TAR_MARKER = ".mrt-bridge-extracted.json"  # in an extracted archive: the tar's sha256


def manifest_home(manifest: ModelManifest) -> Path:
    """Local root of ``manifest``'s files (upstream's layout for its family)."""
    return _HOMES[manifest.home]()


@dataclass
class FileStatus:
    """Where one file stands locally."""

    file: HubFile
    local_path: Path
    present: bool
    size: int | None
    verified: bool


@dataclass
class DownloadReport:
    """What :func:`download` did."""

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def manifest_dir() -> Path:
    """Directory of the model manifests (``MRT_BRIDGE_MODELS_DIR`` overrides)."""
    env = os.environ.get("MRT_BRIDGE_MODELS_DIR")
    return Path(env) if env else _DEFAULT_MANIFEST_DIR


def _parse_manifest(data: dict, source: Path) -> ModelManifest:
    try:
        files = []
        for entry in data["files"]:
            sha = entry.get("sha256")
            if sha is not None and not _SHA256_RE.match(sha):
                raise ValueError(f"bad sha256 {sha!r} for {entry['path']}")
            kind = entry.get("kind", "file")
            if kind not in _KINDS:
                raise ValueError(f"bad kind {kind!r} for {entry['path']}; expected one of {', '.join(_KINDS)}")
            files.append(HubFile(entry["path"], entry.get("size"), sha, kind))
        home = data.get("home", "v2")
        if home not in _HOMES:
            raise ValueError(f"bad home {home!r}; expected one of {', '.join(_HOMES)}")
        return ModelManifest(
            name=data["name"],
            description=data.get("description", ""),
            files=tuple(files),
            needs=tuple(data.get("needs", ())),
            repo_id=data.get("repo_id", hub_layout.HUB_REPO_ID),
            revision=data.get("revision", hub_layout.HUB_REVISION),
            home=home,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed model manifest {source}: {exc!r}") from exc


def load_manifests(directory: Path | None = None) -> dict[str, ModelManifest]:
    """Read every ``*.json`` manifest in ``directory`` (default :func:`manifest_dir`)."""
    directory = Path(directory) if directory else manifest_dir()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"model manifests not found at {directory} (set MRT_BRIDGE_MODELS_DIR)"
        )
    out: dict[str, ModelManifest] = {}
    for path in sorted(directory.glob("*.json")):
        manifest = _parse_manifest(json.loads(path.read_text()), path)
        out[manifest.name] = manifest
    return out


def resolve_targets(target: str, manifests: dict[str, ModelManifest]) -> list[ModelManifest]:
    """Expand ``target`` (a manifest name or ``all``) with what it needs, deps first."""
    if target != "all" and target not in manifests:
        raise ValueError(f"unknown model {target!r}; choose from: {', '.join([*manifests, 'all'])}")
    names = list(manifests) if target == "all" else [target]
    ordered: list[ModelManifest] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in chain:
            raise ValueError(f"manifest dependency cycle: {' -> '.join([*chain, name])}")
        if name not in manifests:
            raise ValueError(f"manifest {chain[-1]!r} needs unknown {name!r}")
        for dep in manifests[name].needs:
            visit(dep, (*chain, name))
        seen.add(name)
        ordered.append(manifests[name])

    for name in names:
        visit(name, ())
    return ordered


def sha256_file(path: Path, progress: bool = True) -> str:
    """sha256 hex digest of a file, with a progress bar for large files."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(
        total=size, unit="B", unit_scale=True, desc=f"sha256 {path.name}",
        disable=not progress or size < (64 << 20), leave=False,
    ) as bar:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


class _VerifiedCache:
    """Remembers which local files were hashed, keyed by size and mtime."""

    def __init__(self, home: Path):
        self.path = home / _VERIFIED_CACHE
        try:
            self.entries: dict[str, dict] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.entries = {}

    def lookup(self, rel: str, local: Path) -> str | None:
        entry = self.entries.get(rel)
        if not entry or not local.is_file():
            return None
        st = local.stat()
        if entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
            return None
        return entry.get("sha256")

    def record(self, rel: str, local: Path, sha256: str) -> None:
        st = local.stat()
        self.entries[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        tmp.replace(self.path)

    def forget(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            self.path.write_text(json.dumps(self.entries, indent=1, sort_keys=True))


def file_status(manifest: ModelManifest, home: Path | None = None) -> list[FileStatus]:
    """Local state of each file of ``manifest``; makes no network request."""
    home = Path(home) if home else manifest_home(manifest)
    cache = _VerifiedCache(home)
    out = []
    for f in manifest.files:
        if f.kind != "file":
            out.append(_folder_status(f, home, cache))
            continue
        local = home / f.path
        present = local.is_file()
        sha = cache.lookup(f.path, local) if present else None
        verified = sha is not None and (f.sha256 is None or sha == f.sha256)
        out.append(FileStatus(f, local, present, local.stat().st_size if present else None, verified))
    return out


def _extracted_dir(home: Path, f: HubFile) -> Path:
    return home / f.path.removesuffix(".tar")


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _folder_status(f: HubFile, home: Path, cache: _VerifiedCache) -> FileStatus:
    """A "dir" entry (complete when its file list was recorded) or a "tar" (extracted or not)."""
    if f.kind == "tar":
        folder = _extracted_dir(home, f)
        marker = _read_marker(folder / _TAR_MARKER)
        if marker is None and (home / f.path).is_file():  # downloaded, not yet extracted
            return FileStatus(f, home / f.path, True, (home / f.path).stat().st_size, False)
        ok = marker is not None and (f.sha256 is None or marker.get("sha256") == f.sha256)
    else:
        folder = home / f.path
        marker = _read_marker(folder / _DIR_MARKER)
        ok = marker is not None and all(
            cache.lookup(rel, home / rel) is not None for rel in marker.get("files", []))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if marker else None
    return FileStatus(f, folder, marker is not None, size, ok)


def _hub_etag_sha256(repo_id: str, revision: str, path: str, endpoint: str | None,
                     token: str | None) -> str | None:
    """The hub's LFS ETag for ``path`` if it is a sha256, else None."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint)
    meta = get_hf_file_metadata(url, token=token or False, endpoint=endpoint)
    etag = (meta.etag or "").strip('"').lower()
    return etag if _SHA256_RE.match(etag) else None


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exception types the hub client raises for network failures (varies by version)."""
    errors: list[type[BaseException]] = [OSError]
    for module, attr in (("httpx2", "HTTPError"), ("httpx", "HTTPError"),
                         ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _describe(exc: BaseException) -> str:
    """One line for a hub failure: the HTTP status of the root cause if there is one."""
    seen = exc
    while seen is not None:
        status = getattr(getattr(seen, "response", None), "status_code", None)
        if status is not None:
            hint = {401: " (set HF_TOKEN)", 403: " (set HF_TOKEN; accept the licence on the hub)",
                    404: " (file not found on the hub)"}.get(status, "")
            return f"HTTP {status}{hint}"
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def _remove_invalid(home: Path, rel: str, local: Path) -> None:
    """Delete a file that failed verification, and the hub client's record of it."""
    local.unlink(missing_ok=True)
    meta = home / ".cache" / "huggingface" / "download" / (rel + ".metadata")
    meta.unlink(missing_ok=True)


def _check(home: Path, cache: _VerifiedCache, f: HubFile, local: Path,
           expected: str | None) -> None:
    actual = sha256_file(local)
    if expected is not None and actual != expected:
        _remove_invalid(home, f.path, local)
        cache.forget(f.path)
        raise ChecksumError(
            f"checksum mismatch for {f.path}: expected sha256 {expected}, got {actual}; "
            f"the file was deleted, run the download again"
        )
    if expected is None:
        log.warning("%s: no known sha256 (manifest and hub give none); size-only check", f.path)
    cache.record(f.path, local, actual)


def download(
    target: str,
    *,
    home: Path | None = None,
    manifests: dict[str, ModelManifest] | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    force: bool = False,
) -> DownloadReport:
    """Fetch ``target`` (a manifest name such as ``mrt2_small`` or ``v1_base``, or ``all``).

    Files already present and verified are skipped without any request. ``home``
    overrides every manifest's local root (default: :func:`manifest_home`).
    Raises :class:`ChecksumError` on a hash mismatch (the bad file is
    deleted) and ``RuntimeError`` on network/auth failures.
    """
    manifests = manifests if manifests is not None else load_manifests()
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    token = token or os.environ.get("HF_TOKEN") or None
    report = DownloadReport()
    for manifest in resolve_targets(target, manifests):
        mhome = Path(home) if home else manifest_home(manifest)
        cache = _VerifiedCache(mhome)
        for f in manifest.files:
            if f.kind == "dir":
                _fetch_dir(manifest, f, mhome, cache, endpoint, token, force, report)
            elif f.kind == "tar":
                _fetch_tar(manifest, f, mhome, cache, endpoint, token, force, report)
            else:
                _fetch_file(manifest, f, mhome, cache, endpoint, token, force, report)
    return report


def _fetch_file(manifest: ModelManifest, f: HubFile, home: Path, cache: _VerifiedCache,
                endpoint: str | None, token: str | None, force: bool, report: DownloadReport) -> None:
    """Download and verify one file (skipped when present and verified)."""
    from huggingface_hub import hf_hub_download

    local = home / f.path
    known = cache.lookup(f.path, local)
    if not force and known is not None and (f.sha256 is None or known == f.sha256):
        log.info("%s: present and verified, skipped", f.path)
        report.skipped.append(f.path)
        return
    try:
        expected = f.sha256 or _hub_etag_sha256(
            manifest.repo_id, manifest.revision, f.path, endpoint, token)
        if not force and local.is_file():
            # e.g. a folder filled by upstream's tools: verify instead of refetching
            if expected is not None and sha256_file(local) == expected:
                cache.record(f.path, local, expected)
                report.skipped.append(f.path)
                return
            if expected is not None:
                log.warning("%s: present but its sha256 differs; downloading again", f.path)
                _remove_invalid(home, f.path, local)
        log.info("downloading %s from %s", f.path, manifest.repo_id)
        hf_hub_download(
            manifest.repo_id, f.path, revision=manifest.revision,
            local_dir=home, endpoint=endpoint, token=token or False,
            force_download=force,
        )
    except _network_errors() as exc:
        raise RuntimeError(f"download of {f.path} from {endpoint or 'huggingface.co'} "
                           f"failed: {_describe(exc)}") from exc
    if f.size is not None and local.stat().st_size != f.size:
        _remove_invalid(home, f.path, local)
        raise ChecksumError(
            f"size mismatch for {f.path}: expected {f.size} bytes, got "
            f"{local.stat().st_size}; the file was deleted"
        )
    _check(home, cache, f, local, expected)
    report.downloaded.append(f.path)


def _fetch_dir(manifest: ModelManifest, f: HubFile, home: Path, cache: _VerifiedCache,
               endpoint: str | None, token: str | None, force: bool, report: DownloadReport) -> None:
    """Download every hub file under folder ``f.path``; the verified list is kept in the folder."""
    marker_path = home / f.path / _DIR_MARKER
    marker = None if force else _read_marker(marker_path)
    if marker is None:
        from huggingface_hub import HfApi

        try:
            info = HfApi(endpoint=endpoint).model_info(
                manifest.repo_id, revision=manifest.revision, token=token or False)
        except _network_errors() as exc:
            raise RuntimeError(f"listing {f.path} on {endpoint or 'huggingface.co'} "
                               f"failed: {_describe(exc)}") from exc
        prefix = f.path.rstrip("/") + "/"
        names = sorted(s.rfilename for s in info.siblings or () if s.rfilename.startswith(prefix))
        if not names:
            raise RuntimeError(f"{f.path}/ has no files in {manifest.repo_id} (revision {manifest.revision})")
    else:
        names = marker["files"]
    for name in names:
        _fetch_file(manifest, HubFile(name), home, cache, endpoint, token, force, report)
    marker_path.write_text(json.dumps({"files": names}, indent=1))


def _fetch_tar(manifest: ModelManifest, f: HubFile, home: Path, cache: _VerifiedCache,
               endpoint: str | None, token: str | None, force: bool, report: DownloadReport) -> None:
    """Download, verify and extract an archive to its path without ``.tar``; the tar is then deleted."""
    folder = _extracted_dir(home, f)
    marker = _read_marker(folder / _TAR_MARKER)
    if not force and marker is not None and (f.sha256 is None or marker.get("sha256") == f.sha256):
        log.info("%s: extracted and verified, skipped", f.path)
        report.skipped.append(f.path)
        return
    if not force and marker is None and (folder / "checkpoint").is_file() and not (home / f.path).exists():
        # extracted by upstream v1's own asset.fetch (it deletes the tar): nothing to verify against
        log.warning("%s: using %s extracted by upstream (unverified)", f.path, folder)
        report.skipped.append(f.path)
        return
    _fetch_file(manifest, f, home, cache, endpoint, token, force, report)
    tar_path = home / f.path
    sha = cache.lookup(f.path, tar_path)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(tar_path) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(tmp, filter="data")  # refuses absolute paths, "..", devices
            else:  # Python < 3.11.4
                if any(m.name.startswith("/") or ".." in Path(m.name).parts for m in archive.getmembers()):
                    raise tarfile.TarError("archive has absolute or '..' member paths")
                archive.extractall(tmp)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"cannot extract {f.path}: {exc}") from exc
    (tmp / _TAR_MARKER).write_text(json.dumps({"archive": f.path, "sha256": sha}))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    tar_path.unlink()
    cache.forget(f.path)
    log.info("%s: extracted to %s", f.path, folder)
