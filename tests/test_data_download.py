"""Resumable, verified MAESTRO download against a local HTTP server (gigapiano.data.download).

No test touches the internet: a stdlib ``http.server`` on 127.0.0.1 serves the archive and can drop
connections, ignore ``Range`` or serve corrupted bytes.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.error
import zipfile
from pathlib import Path

import pytest

from gigapiano.data.download import (
    DownloadVerificationError,
    download_file,
    download_maestro,
    extract_zip,
    resolve_maestro_root,
)
from gigapiano.data.maestro import read_maestro_csv

ARCHIVE = "maestro-v3.0.0-midi.zip"


class ArchiveServer:
    """Serves ``payload`` at ``/maestro-v3.0.0-midi.zip`` with HTTP Range support and fault injection.

    Attributes:
        ranges: The ``Range`` header of every request (``None`` when absent).
        drop_after: When set, each response is cut after this many body bytes (connection closed).
        drop_times: How many responses to cut (then serve normally).
        ignore_range: Answer 200 with the whole file even when a range was asked.
        corrupt: Flip one byte of what is served.
    """

    def __init__(self, payload: bytes):
        self.payload = payload
        self.ranges: list[str | None] = []
        self.drop_after: int | None = None
        self.drop_times = 1
        self.ignore_range = False
        self.corrupt = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                header = self.headers.get("Range")
                server.ranges.append(header)
                if self.path != f"/{ARCHIVE}":
                    self.send_error(404)
                    return
                body = bytearray(server.payload)
                if server.corrupt:
                    body[len(body) // 2] ^= 0xFF
                start = 0
                if header and not server.ignore_range:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = bytes(body[start:])
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if server.drop_after is not None and server.drop_times > 0:
                    server.drop_times -= 1
                    self.wfile.write(chunk[: server.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{ARCHIVE}"

    def __enter__(self) -> ArchiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def payload() -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(50_000))


@pytest.fixture
def server(payload):
    with ArchiveServer(payload) as running:
        yield running


def _download(server, destination, payload, **kwargs):
    kwargs.setdefault("expected_size", len(payload))
    kwargs.setdefault("expected_sha256", hashlib.sha256(payload).hexdigest())
    return download_file(
        server.url, destination, retry_wait=0, show_progress=False, chunk_size=4096, **kwargs
    )


def test_dropped_connection_is_resumed_with_a_range_request(server, payload, tmp_path):
    server.drop_after = 12_345
    path = _download(server, tmp_path / ARCHIVE, payload)
    assert path.read_bytes() == payload
    assert server.ranges == [None, "bytes=12345-"]
    assert not (tmp_path / f"{ARCHIVE}.part").exists()


def test_interrupted_call_keeps_the_part_file_and_the_next_call_resumes(server, payload, tmp_path):
    server.drop_after, server.drop_times = 20_000, 1
    with pytest.raises(ConnectionError, match="run again to resume"):
        _download(server, tmp_path / ARCHIVE, payload, max_retries=0)
    part = tmp_path / f"{ARCHIVE}.part"
    assert part.stat().st_size == 20_000 and not (tmp_path / ARCHIVE).exists()
    path = _download(server, tmp_path / ARCHIVE, payload)
    assert path.read_bytes() == payload
    assert server.ranges == [None, "bytes=20000-"]


def test_server_ignoring_range_restarts_from_scratch(server, payload, tmp_path):
    (tmp_path / f"{ARCHIVE}.part").write_bytes(b"\x00" * 1000)  # stale bytes that must not survive
    server.ignore_range = True
    path = _download(server, tmp_path / ARCHIVE, payload)
    assert path.read_bytes() == payload
    assert server.ranges == ["bytes=1000-"]


def test_complete_part_file_is_verified_without_refetching(server, payload, tmp_path):
    (tmp_path / f"{ARCHIVE}.part").write_bytes(payload)
    assert _download(server, tmp_path / ARCHIVE, payload).read_bytes() == payload
    assert server.ranges == []


def test_corrupted_download_is_rejected_and_removed(server, payload, tmp_path):
    server.corrupt = True
    with pytest.raises(DownloadVerificationError, match="SHA-256") as info:
        _download(server, tmp_path / ARCHIVE, payload)
    assert hashlib.sha256(payload).hexdigest() in str(info.value)
    assert not (tmp_path / ARCHIVE).exists() and not (tmp_path / f"{ARCHIVE}.part").exists()
    server.corrupt = False
    assert _download(server, tmp_path / ARCHIVE, payload).read_bytes() == payload


def test_wrong_size_is_rejected(server, payload, tmp_path):
    with pytest.raises(DownloadVerificationError, match=f"has {len(payload)} bytes, expected 10"):
        _download(server, tmp_path / ARCHIVE, payload, expected_size=10)


def test_cached_file_is_reused_and_a_corrupted_cache_is_replaced(server, payload, tmp_path):
    destination = _download(server, tmp_path / ARCHIVE, payload)
    _download(server, destination, payload)
    assert server.ranges == [None]
    destination.write_bytes(payload[:-1] + b"!")
    assert _download(server, destination, payload).read_bytes() == payload
    assert server.ranges == [None, None]


def test_checksum_is_recorded_on_first_download_when_unknown(server, payload, tmp_path):
    destination = _download(server, tmp_path / ARCHIVE, payload, expected_size=None, expected_sha256=None)
    recorded = (tmp_path / f"{ARCHIVE}.sha256").read_text().strip()
    assert recorded == hashlib.sha256(payload).hexdigest()
    destination.write_bytes(b"tampered")
    _download(server, destination, payload, expected_size=None, expected_sha256=None)
    assert destination.read_bytes() == payload and len(server.ranges) == 2


def test_http_errors_are_not_retried(server, payload, tmp_path):
    with pytest.raises(urllib.error.HTTPError):
        download_file(server.url + ".missing", tmp_path / "x.zip", retry_wait=0, show_progress=False)
    assert len(server.ranges) == 1


def _maestro_zip(tmp_path: Path, make_fake_maestro) -> bytes:
    root = make_fake_maestro(rows=(("Franz Liszt", "La Campanella", "train", 2018, 20),))
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in sorted(root.rglob("*")):
            bundle.write(file, f"maestro-v3.0.0/{file.relative_to(root).as_posix()}")
    return archive.read_bytes()


def test_download_maestro_extracts_once_into_the_cache(tmp_path, make_fake_maestro):
    data = _maestro_zip(tmp_path, make_fake_maestro)
    cache = tmp_path / "cache"
    with ArchiveServer(data) as running:
        kwargs = {"expected_size": len(data), "expected_sha256": hashlib.sha256(data).hexdigest()}
        root = download_maestro(cache, url=running.url, show_progress=False, **kwargs)
        assert root == cache / "maestro" / "maestro-v3.0.0-midi" / "maestro-v3.0.0"
        assert [p.composer for p in read_maestro_csv(root)] == ["Franz Liszt"]
        assert download_maestro(cache, url=running.url, show_progress=False, **kwargs) == root
        assert running.ranges == [None]
    assert resolve_maestro_root(None, cache_dir=cache, allow_download=False) == root


def test_no_cached_copy_and_download_forbidden(tmp_path):
    with pytest.raises(FileNotFoundError, match="--maestro_dir"):
        resolve_maestro_root(None, cache_dir=tmp_path, allow_download=False)


def test_unsafe_zip_members_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../outside.txt", "x")
    with pytest.raises(DownloadVerificationError, match="unsafe path '../outside.txt'"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
