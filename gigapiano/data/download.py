"""Download MAESTRO into the Hugging Face cache: resumable, verified, extracted once.

The MIDI-only archive of MAESTRO v3.0.0 (about 56 MB) is fetched with HTTP ``Range`` requests into a
``.part`` file, so an interrupted transfer continues where it stopped (within the call, after a dropped
connection, and across calls). The finished archive is checked against the size and SHA-256 published
for it before it is used, then extracted under ``$HF_HOME/gigapiano/``.

Bounds: the transfer never reads past the expected size (a server that sends more is cut off there; a
download of unknown size stops at ``max_size``, ``MAX_DOWNLOAD_BYTES`` by default, and is refused past it), a
read that waits longer than ``timeout`` seconds counts as a dropped connection (the bytes already received
stay in the ``.part`` file and the next attempt resumes after them), and the whole download ends after
``deadline`` seconds however slowly the bytes trickle in (``--download_timeout`` / ``--download_deadline``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from filelock import FileLock
from huggingface_hub import constants as hf_constants
from tqdm.auto import tqdm

from .maestro import MAESTRO_VERSION, find_maestro_root

logger = logging.getLogger(__name__)

MAESTRO_MIDI_URL = (
    "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/maestro-v3.0.0-midi.zip"
)
#: Size in bytes and SHA-256 of ``maestro-v3.0.0-midi.zip`` as published with the dataset (the MAESTRO
#: page gives the SHA-256; the byte size is the one other MAESTRO loaders, e.g. muspy, pin).
MAESTRO_MIDI_SIZE = 58_416_533
MAESTRO_MIDI_SHA256 = "70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c"

#: Largest download of unknown size (no ``expected_size``, e.g. another ``url``): about 9 times the MIDI
#: archive. A body that goes past it, announced or not (no Content-Length, chunked), is refused.
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024

#: Environment variable overriding the cache root (default ``$HF_HOME/gigapiano``).
CACHE_ENV = "GIGAPIANO_CACHE"

_TRUE = ("1", "ON", "YES", "TRUE")
_RETRYABLE = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class DownloadVerificationError(ValueError):
    """Raised when a downloaded file does not have the expected size or checksum."""


class DownloadTooLargeError(DownloadVerificationError):
    """Raised when a download of unknown size is larger than its cap (the partial file is removed)."""


class DownloadDeadlineError(OSError):
    """Raised when a download is still incomplete after its overall deadline (the partial file is kept)."""


def default_cache_dir() -> Path:
    """Returns the cache root for downloads, extracted MAESTRO and tokenised datasets.

    ``$GIGAPIANO_CACHE`` wins; otherwise ``<HF_HOME>/gigapiano`` (``HF_HOME`` as resolved by
    ``huggingface_hub``, by default ``~/.cache/huggingface``).
    """
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path(hf_constants.HF_HOME) / "gigapiano"


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Returns the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected_size: int | None, expected_sha256: str | None, url: str) -> None:
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise DownloadVerificationError(
            f"{path.name} from {url} has {size} bytes, expected {expected_size}; the file was removed. Run "
            "again to download it afresh, or check the URL."
        )
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256.lower():
            raise DownloadVerificationError(
                f"{path.name} from {url} has SHA-256 {actual}, expected {expected_sha256}; the file was "
                "removed as corrupted. Run again to download it afresh."
            )


def _transfer(
    url: str,
    part: Path,
    expected_size: int | None,
    chunk_size: int,
    timeout: float,
    show_progress: bool,
    deadline: float | None = None,
    max_size: int | None = None,
) -> None:
    """One HTTP request appending to ``part`` from its current size, up to ``expected_size`` at most; raises
    on a dropped or stalled connection, :class:`DownloadDeadlineError` past ``deadline`` (monotonic), and
    :class:`DownloadTooLargeError` when a download of unknown size goes past ``max_size`` bytes."""
    offset = part.stat().st_size if part.exists() else 0
    cap = max_size if expected_size is None else None
    request = urllib.request.Request(url, headers={"User-Agent": "gigapiano-data"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset and (expected_size is None or offset == expected_size):
            return  # Range not satisfiable because the part file is already complete.
        if error.code == 416:
            logger.warning("Server refused to resume %s at byte %d; starting over.", url, offset)
            part.unlink()
            return _transfer(url, part, expected_size, chunk_size, timeout, show_progress, deadline, max_size)
        raise
    with response:
        if offset and response.status != 206:
            logger.warning("Server ignored the Range request for %s; downloading from the start.", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else expected_size
        if expected_size is not None and total != expected_size:  # known wrong before a byte is read
            part.unlink(missing_ok=True)
            raise DownloadVerificationError(
                f"{part.name} from {url} has {total} bytes, expected {expected_size}; nothing was kept. "
                "Check the URL."
            )
        if cap is not None and total is not None and total > cap:  # announced too large: refused unread
            part.unlink(missing_ok=True)
            raise DownloadTooLargeError(
                f"{url} announces {total} bytes, more than the {cap}-byte limit of a download of unknown "
                "size; nothing was kept. Check the URL, or pass the expected size."
            )
        mode = "ab" if offset else "wb"
        with (
            part.open(mode) as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"Downloading {PurePosixPath(url).name}",
                disable=not show_progress,
            ) as bar,
        ):
            received, too_large = 0, False
            while True:
                wanted = chunk_size
                if expected_size is not None:
                    wanted = min(chunk_size, expected_size - offset - received)
                    if wanted <= 0:  # never past the known size, whatever the server sends
                        return
                elif cap is not None:  # one byte past the cap tells a larger body from one of exactly the cap
                    wanted = min(chunk_size, cap - offset - received + 1)
                # read1 returns what has arrived: a stall loses nothing already received
                block = response.read1(wanted)
                if not block:
                    break
                if cap is not None and offset + received + len(block) > cap:
                    too_large = True  # nothing past the cap is written
                    break
                handle.write(block)
                received += len(block)
                bar.update(len(block))
                if deadline is not None and time.monotonic() > deadline:
                    handle.flush()
                    raise DownloadDeadlineError(
                        f"Download of {url} passed its deadline with {offset + received} bytes in {part}; "
                        "run again to resume, or raise --download_deadline."
                    )
        if too_large:
            part.unlink()
            raise DownloadTooLargeError(
                f"{url} sent more than the {cap}-byte limit of a download of unknown size (no size was "
                f"announced); the partial file {part.name} was removed. Check the URL, or pass the expected "
                "size."
            )
        if length is not None and received < int(length):
            raise ConnectionError(f"connection closed after {received} of {length} bytes")
        if expected_size is not None and offset + received < expected_size:  # a body without a length, cut
            raise ConnectionError(f"connection closed at {offset + received} of {expected_size} bytes")


def download_file(
    url: str,
    destination: str | os.PathLike,
    *,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    max_retries: int = 5,
    chunk_size: int = 1 << 20,
    timeout: float = 60.0,
    retry_wait: float = 1.0,
    show_progress: bool = True,
    deadline: float | None = 3600.0,
    max_size: int | None = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Downloads ``url`` to ``destination``, resuming partial transfers and verifying the result.

    Bytes go to ``<destination>.part`` and the file is renamed into place only after verification, so a
    file at ``destination`` is always complete. When no SHA-256 is given, the digest of the first complete
    download is recorded in ``<destination>.sha256`` and later calls check the file against it.

    Args:
        url: HTTP(S) URL.
        destination: Final file path.
        expected_size: Exact size in bytes, or ``None`` to skip the size check.
        expected_sha256: Hex SHA-256, or ``None`` to record it on first download.
        max_retries: Resumed attempts after a dropped connection before giving up.
        chunk_size: Bytes read per block.
        timeout: Stall timeout: seconds a connect or a read may wait for data before the attempt counts as
            dropped (and is resumed).
        retry_wait: Seconds to wait before the first retry (doubles each retry).
        show_progress: Whether to show a tqdm progress bar.
        deadline: Seconds the whole download may take, retries included (``None``: no limit).
        max_size: Most bytes a download of unknown size (no ``expected_size``) may have (``None``: no
            limit); a larger one is refused, announced or not.

    Returns:
        The verified file path.

    Raises:
        DownloadVerificationError: Size or checksum mismatch (the bad file is deleted).
        DownloadTooLargeError: A download of unknown size is larger than ``max_size`` (nothing is kept).
        ConnectionError: Still incomplete after ``max_retries`` resumes (the partial file is kept).
        DownloadDeadlineError: Still incomplete after ``deadline`` seconds (the partial file is kept).
    """
    ends = None if deadline is None else time.monotonic() + deadline
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    recorded = destination.with_name(destination.name + ".sha256")
    with FileLock(str(destination) + ".lock"):
        if expected_sha256 is None and recorded.is_file():
            expected_sha256 = recorded.read_text().strip() or None
        if destination.is_file():
            try:
                _verify(destination, expected_size, expected_sha256, url)
                return destination
            except DownloadVerificationError as error:
                logger.warning("Cached %s failed verification (%s); downloading again.", destination, error)
                destination.unlink()
        limit = expected_size if expected_size is not None else max_size
        if part.exists() and limit is not None and part.stat().st_size > limit:
            part.unlink()
        attempt = 0
        while True:
            done = expected_size is not None and part.exists() and part.stat().st_size == expected_size
            if done:
                break
            try:
                _transfer(url, part, expected_size, chunk_size, timeout, show_progress, ends, max_size)
                break
            except _RETRYABLE as error:
                if isinstance(error, urllib.error.HTTPError) and error.code < 500:
                    raise
                attempt += 1
                have = part.stat().st_size if part.exists() else 0
                if attempt > max_retries:
                    raise ConnectionError(
                        f"Download of {url} stopped at {have} bytes after {max_retries} resumes ({error}). "
                        f"The partial file {part} is kept: run again to resume."
                    ) from error
                wait = retry_wait * 2 ** (attempt - 1)
                if ends is not None and time.monotonic() + wait > ends:
                    raise DownloadDeadlineError(
                        f"Download of {url} passed its deadline with {have} bytes in {part} ({error}); run "
                        "again to resume, or raise --download_deadline."
                    ) from error
                logger.warning("Download of %s interrupted at %d bytes (%s); resuming.", url, have, error)
                time.sleep(wait)
        try:
            _verify(part, expected_size, expected_sha256, url)
        except DownloadVerificationError:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, destination)
        if expected_sha256 is None:
            digest = sha256_of(destination)
            recorded.write_text(digest + "\n")
            logger.info("Recorded SHA-256 %s of %s in %s.", digest, destination.name, recorded)
    return destination


def extract_zip(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extracts a zip archive safely (no absolute paths or ``..``) into ``target``.

    Extraction goes to a temporary sibling folder that is renamed into place, so a crash never leaves a
    half-extracted ``target``.

    Args:
        archive: The zip file.
        target: Folder to create; replaced if it exists.

    Returns:
        ``target``.
    """
    archive, target = Path(archive), Path(target)
    staging = target.with_name(target.name + ".extracting")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            parts = PurePosixPath(member).parts
            if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DownloadVerificationError(
                    f"{archive} contains an unsafe path {member!r}; refusing to extract."
                )
        bundle.extractall(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def download_maestro(
    cache_dir: str | os.PathLike | None = None,
    *,
    url: str = MAESTRO_MIDI_URL,
    expected_size: int | None = MAESTRO_MIDI_SIZE,
    expected_sha256: str | None = MAESTRO_MIDI_SHA256,
    show_progress: bool = True,
    **download_kwargs,
) -> Path:
    """Returns the extracted MAESTRO root in the cache, downloading and extracting it on first use.

    Args:
        cache_dir: Cache root; defaults to :func:`default_cache_dir` (``$HF_HOME/gigapiano``).
        url: Archive URL (tests point it at a local server).
        expected_size: Archive size in bytes; ``None`` skips the check.
        expected_sha256: Archive SHA-256; ``None`` records it on first download instead.
        show_progress: Whether to show progress bars.
        **download_kwargs: Passed to :func:`download_file` (``max_retries``, ``timeout``, ...).

    Returns:
        The MAESTRO root (the folder with ``maestro-v3.0.0.csv``).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    archive_name = PurePosixPath(url).name or "maestro-midi.zip"
    extracted = cache / "maestro" / archive_name.removesuffix(".zip")
    marker = extracted / ".complete.json"
    extracted.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(extracted) + ".lock"):
        if marker.is_file():
            return find_maestro_root(extracted)
        archive = download_file(
            url,
            cache / "downloads" / archive_name,
            expected_size=expected_size,
            expected_sha256=expected_sha256,
            show_progress=show_progress,
            **download_kwargs,
        )
        logger.info("Extracting %s to %s", archive, extracted)
        extract_zip(archive, extracted)
        root = find_maestro_root(extracted)
        marker.write_text(json.dumps({"url": url, "sha256": sha256_of(archive), "version": MAESTRO_VERSION}))
    return root


def resolve_maestro_root(
    maestro_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
    **download_kwargs,
) -> Path:
    """Returns a MAESTRO root: the given local copy, or the cached download.

    Args:
        maestro_dir: An extracted MAESTRO folder (or its parent); when given nothing is downloaded.
        cache_dir: Cache root for the download.
        allow_download: When ``False`` and no cached copy exists, raise instead of downloading.
        **download_kwargs: Passed to :func:`download_maestro`.

    Returns:
        The MAESTRO root folder.
    """
    if maestro_dir is not None:
        return find_maestro_root(maestro_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    candidate = cache / "maestro" / f"maestro-{MAESTRO_VERSION}-midi"
    if (candidate / ".complete.json").is_file():
        return find_maestro_root(candidate)
    url = download_kwargs.get("url", MAESTRO_MIDI_URL)
    fix = f"pass --maestro_dir <an extracted MAESTRO v3.0.0 folder> (download {url} and unzip it)"
    if not allow_download:
        raise FileNotFoundError(f"No MAESTRO copy in the cache {cache} and downloading is disabled; {fix}.")
    if hf_constants.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE", "").upper() in _TRUE:
        raise ConnectionError(f"Offline (HF_HUB_OFFLINE) and no MAESTRO copy in the cache {cache}: {fix}.")
    host = urllib.parse.urlsplit(url).hostname
    try:  # no network at all: say so at once instead of after minutes of retries
        if host:
            socket.getaddrinfo(host, None)
        return download_maestro(cache_dir, **download_kwargs)
    except (ConnectionError, urllib.error.URLError, TimeoutError, socket.gaierror) as error:
        reason = " ".join(str(getattr(error, "reason", error)).split())
        raise ConnectionError(f"Could not download MAESTRO ({reason}): {fix}.") from error
