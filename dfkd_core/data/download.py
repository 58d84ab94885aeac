"""Fetching dataset files: urllib download with a progress hook, sha256 check, extraction
from zip archives, and an atomic write (temp file + os.replace, never a partial file).

Environment:
  DFKD_OFFLINE=1          never download; a missing file is an error naming where to put it.
  DFKD_DATA_MIRROR=URL    fetch every file from URL + its relative path in the data dir
                          (e.g. http://127.0.0.1:8000/ serving a copy of a data dir holds
                          keel/compactiv.dat at http://127.0.0.1:8000/keel/compactiv.dat).
                          A mirror serves the files as the data dir holds them, so nothing
                          is extracted from a zip.
  DFKD_ACCEPT_CHECKSUM_MISMATCH=1
                          use a data file that differs from its published sha256 (a warning
                          is logged); without it such a file is refused (catalog.verify_file).
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Optional

from ..errors import DatasetError

#: progress(done_bytes, total_bytes or None, label) — called while a file downloads.
Progress = Callable[[int, Optional[int], str], None]

CHUNK = 1 << 16
TIMEOUT_S = 30.0


def offline() -> bool:
    """True when DFKD_OFFLINE is set to something other than '', '0', 'false', 'no'."""
    return os.environ.get("DFKD_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def mirror_url(relpath: str) -> str | None:
    """The URL of `relpath` on DFKD_DATA_MIRROR, or None when no mirror is set."""
    base = os.environ.get("DFKD_DATA_MIRROR", "").strip()
    if not base:
        return None
    return base.rstrip("/") + "/" + relpath.lstrip("/")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: Path) -> str:
    """sha256_file, remembered by (resolved path, size, mtime) in this process and in
    DFKD_HOME/data-checksums.json, so a big file is hashed again only after it changed."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    digest = _HASHES.get(key)
    if digest is not None:
        return digest
    stored = _read_hash_file()
    entry = stored.get(key[0])
    if isinstance(entry, dict) and entry.get("size") == key[1] and entry.get("mtime_ns") == key[2] \
            and isinstance(entry.get("sha256"), str):
        digest = entry["sha256"]
    else:
        digest = sha256_file(path)
        stored[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
        _write_hash_file(stored)
    _HASHES[key] = digest
    return digest


_HASHES: dict[tuple[str, int, int], str] = {}
HASH_FILE = "data-checksums.json"


def _hash_file_path() -> Path | None:
    from .. import paths
    from ..errors import DfkdError

    try:
        return paths.home_dir() / HASH_FILE
    except DfkdError:  # no usable DFKD_HOME: hashes are remembered in this process only
        return None


def _read_hash_file() -> dict:
    path = _hash_file_path()
    try:
        data = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    except (OSError, ValueError):  # a damaged cache of hashes is rebuilt
        return {}
    return data if isinstance(data, dict) else {}


def _write_hash_file(data: dict) -> None:
    path = _hash_file_path()
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # read-only or full: hashes are remembered in this process only
        tmp.unlink(missing_ok=True)


def stderr_progress(done: int, total: int | None, label: str) -> None:
    """A one-line progress bar on stderr (the CLI's progress hook)."""
    mb = done / 1e6
    if total:
        frac = min(1.0, done / total)
        bar = "#" * int(30 * frac)
        line = f"\r{label}: [{bar:<30}] {100 * frac:5.1f}% {mb:.1f}/{total / 1e6:.1f} MB"
    else:
        line = f"\r{label}: {mb:.1f} MB"
    end = "\n" if total and done >= total else ""
    print(line, end=end, file=sys.stderr, flush=True)


def _fetch(url: str, into, label: str, progress: Progress | None, timeout: float) -> tuple[int, str]:
    """Stream `url` into the open binary file `into`; (bytes, sha256 hex). Raises OSError-family
    or http.client errors on network failure, ValueError when the body is short."""
    request = urllib.request.Request(url, headers={"User-Agent": "dfkd-lab"})
    digest = hashlib.sha256()
    done = 0
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        last = 0.0
        if progress:
            progress(0, total, label)
        while True:
            block = response.read(CHUNK)
            if not block:
                break
            into.write(block)
            digest.update(block)
            done += len(block)
            now = time.monotonic()
            if progress and now - last > 0.1:
                progress(done, total, label)
                last = now
        if total is not None and done != total:
            raise ValueError(f"the connection closed after {done} of {total} bytes")
    if progress:
        progress(done, total or done, label)
    return done, digest.hexdigest()


def _extract(archive: Path, member: str, into, gzip_it: bool = False) -> str:
    """Copy the zip member whose base name is `member` (nested zips searched) into `into`,
    gzip-compressed when `gzip_it`; returns the sha256 of what was written."""
    from .parsers import _zip_member

    data = _zip_member(archive, archive.read_bytes(), member)
    if gzip_it:
        data = gzip.compress(data, mtime=0)
    into.write(data)
    return hashlib.sha256(data).hexdigest()


def download_file(
    url: str,
    dest: Path,
    *,
    relpath: str | None = None,
    sha256: str | None = None,
    member: str | None = None,
    progress: Progress | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download `url` to `dest` atomically. When `member` is given, `url` is a zip archive
    and `dest` receives that member (gzip-compressed when `dest` ends in .gz). `sha256` (when known) is checked on what `dest`
    would hold; on any failure nothing is left at `dest` or beside it."""
    dest = Path(dest)
    label = relpath or dest.name
    where = f"Download it yourself from {url} and put it at {dest}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise DatasetError(f"Cannot write {label} into {dest.parent} ({exc.strerror or exc}). {where}.") from None
    tmp = Path(tmp_name)
    archive: Path | None = None
    try:
        try:
            if member is None:
                with os.fdopen(fd, "wb") as fh:
                    _, digest = _fetch(url, fh, label, progress, timeout)
            else:
                os.close(fd)
                afd, archive_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".zip.part", dir=dest.parent)
                archive = Path(archive_name)
                with os.fdopen(afd, "wb") as fh:
                    _fetch(url, fh, label, progress, timeout)
                with open(tmp, "wb") as fh:
                    gzip_it = dest.suffix == ".gz" and not member.endswith(".gz")
                    digest = _extract(archive, member, fh, gzip_it)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", None) or exc
            raise DatasetError(f"Cannot download {label} from {url} ({reason}). {where}.") from None
        except DatasetError as exc:  # the archive downloaded but holds no usable member
            raise DatasetError(f"Cannot extract {member} from {url} ({exc}). {where}.") from None
        if sha256 is not None and digest != sha256.lower():
            raise DatasetError(
                f"Checksum mismatch for {label} downloaded from {url}: expected sha256 {sha256}, got {digest}; "
                f"the file was not saved. {where}."
            )
        os.replace(tmp, dest)
    finally:
        for leftover in (tmp, archive):
            if leftover is not None and leftover.exists():
                leftover.unlink()
    return dest
