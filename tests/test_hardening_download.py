"""The downloader against hostile servers on 127.0.0.1: an endless body, a trickle, a stall mid-transfer, and
bodies without an announced size (no Content-Length, chunked) that are larger than allowed or cut short."""

from __future__ import annotations

import hashlib
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gigapiano.data.arguments import GigaPianoDataArguments
from gigapiano.data.download import (
    MAX_DOWNLOAD_BYTES,
    DownloadDeadlineError,
    DownloadTooLargeError,
    download_file,
)

PAYLOAD = bytes(range(256)) * 64  # 16 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@contextmanager
def raw_server(reply: Callable[[socketserver.StreamRequestHandler, int], None]) -> Iterator[tuple[str, list]]:
    """A bare HTTP/1.0 server; `reply(handler, offset)` writes the response for a request starting at the
    Range offset (0 without one). Yields the URL and the list of offsets requested."""
    offsets: list[int] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            offset = 0
            while (line := self.rfile.readline().strip()) != b"":
                if line.lower().startswith(b"range: bytes="):
                    offset = int(line.split(b"=")[1].split(b"-")[0])
            offsets.append(offset)
            try:
                reply(self, offset)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/archive.zip", offsets
    finally:
        server.shutdown()
        server.server_close()


def head(handler, offset: int, length: int | None = None) -> None:
    status = b"206 Partial Content" if offset else b"200 OK"
    size = b"" if length is None else b"Content-Length: %d\r\n" % length
    handler.wfile.write(b"HTTP/1.0 " + status + b"\r\n" + size + b"\r\n")


def test_an_endless_body_is_cut_at_the_expected_size(tmp_path):
    def endless(handler, offset):
        head(handler, offset)
        handler.wfile.write(PAYLOAD[offset:])
        while True:  # then garbage for ever, with no Content-Length to stop it
            handler.wfile.write(b"\0" * 65536)

    with raw_server(endless) as (url, _):
        started = time.monotonic()
        path = download_file(url, tmp_path / "a.zip", expected_size=len(PAYLOAD), expected_sha256=SHA,
                             show_progress=False, timeout=5)  # fmt: skip
    assert time.monotonic() - started < 30
    assert path.read_bytes() == PAYLOAD


def test_a_trickle_ends_at_the_deadline_and_keeps_what_arrived(tmp_path):
    def trickle(handler, offset):
        head(handler, offset, len(PAYLOAD) - offset)
        for byte in PAYLOAD[offset:]:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.05)  # always within the stall timeout, never done

    with raw_server(trickle) as (url, _):
        started = time.monotonic()
        with pytest.raises(DownloadDeadlineError, match="passed its deadline") as caught:
            download_file(url, tmp_path / "a.zip", expected_size=len(PAYLOAD), expected_sha256=SHA,
                          show_progress=False, timeout=5, deadline=1.0)  # fmt: skip
        assert time.monotonic() - started < 10
    part = tmp_path / "a.zip.part"
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and part.read_bytes() == PAYLOAD[:kept]
    assert f"with {kept} bytes in {part}" in str(caught.value)  # the message says what is on disk


def test_a_stall_keeps_the_partial_block_and_resumes_after_it(tmp_path):
    half = len(PAYLOAD) // 2

    def stall_once(handler, offset):
        head(handler, offset, len(PAYLOAD) - offset)
        if offset == 0:
            handler.wfile.write(PAYLOAD[:half])
            handler.wfile.flush()
            time.sleep(2)  # longer than the stall timeout
            return
        handler.wfile.write(PAYLOAD[offset:])

    with raw_server(stall_once) as (url, offsets):
        options = {"show_progress": False, "timeout": 0.5, "retry_wait": 0.01, "expected_sha256": SHA}
        path = download_file(url, tmp_path / "a.zip", expected_size=len(PAYLOAD), **options)
    assert path.read_bytes() == PAYLOAD
    assert offsets == [0, half]  # the half received before the stall was not lost


def test_the_download_bounds_are_flags():
    args = GigaPianoDataArguments(download_timeout=5, download_deadline=60)
    assert args.download_options == {"timeout": 5, "deadline": 60}
    with pytest.raises(ValueError, match="download_deadline"):
        GigaPianoDataArguments(download_deadline=0)


def endless_body(framing: str) -> Callable[[socketserver.StreamRequestHandler, int], None]:
    """The payload and then zeros for ever, with no size announced: close-delimited or chunked."""

    def reply(handler, offset):
        if framing == "chunked":
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            write = lambda data: handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))  # noqa: E731
        else:
            head(handler, offset)
            write = handler.wfile.write
        write(PAYLOAD)
        while True:
            write(b"\0" * 65536)

    return reply


@pytest.mark.parametrize("framing", ["no Content-Length", "chunked"])
def test_a_body_of_unknown_size_is_refused_past_the_cap(tmp_path, framing):
    cap = 4 * len(PAYLOAD)
    with raw_server(endless_body(framing)) as (url, offsets):
        started = time.monotonic()
        with pytest.raises(DownloadTooLargeError, match=f"more than the {cap}-byte limit") as caught:
            download_file(url, tmp_path / "a.zip", max_size=cap, show_progress=False, timeout=5)
        assert time.monotonic() - started < 30
    assert offsets == [0]  # refused, not retried
    assert isinstance(caught.value, ValueError)  # train.py: a one-line usage error
    assert "a.zip.part was removed" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip.lock"]  # no .part, no file, no .sha256


def test_a_body_of_unknown_size_may_fill_the_cap_exactly(tmp_path):
    def exact(handler, offset):
        head(handler, offset)
        handler.wfile.write(PAYLOAD[offset:])

    with raw_server(exact) as (url, _):
        path = download_file(url, tmp_path / "a.zip", max_size=len(PAYLOAD), show_progress=False, timeout=5)
        assert path.read_bytes() == PAYLOAD and (tmp_path / "a.zip.sha256").read_text().strip() == SHA
        with pytest.raises(DownloadTooLargeError):
            download_file(url, tmp_path / "b.zip", max_size=len(PAYLOAD) - 1, show_progress=False, timeout=5)
    assert not (tmp_path / "b.zip.part").exists()


def test_an_announced_size_past_the_cap_is_refused_before_reading(tmp_path):
    def huge(handler, offset):
        head(handler, offset, 10**12)
        while True:
            handler.wfile.write(b"\0" * 65536)

    with raw_server(huge) as (url, _):
        with pytest.raises(DownloadTooLargeError, match="announces 1000000000000 bytes"):
            download_file(url, tmp_path / "a.zip", show_progress=False, timeout=5)
    assert not (tmp_path / "a.zip.part").exists()


def test_the_default_cap_is_documented():
    limits = (Path(__file__).resolve().parents[1] / "docs" / "limits.md").read_text()
    assert MAX_DOWNLOAD_BYTES == 512 * 1024 * 1024 and "512 MiB (`MAX_DOWNLOAD_BYTES`" in limits


def test_a_body_without_a_length_cut_short_is_resumed_after_what_arrived(tmp_path):
    half = len(PAYLOAD) // 2

    def close_early_once(handler, offset):
        head(handler, offset)
        handler.wfile.write(PAYLOAD[offset:half] if offset == 0 else PAYLOAD[offset:])

    with raw_server(close_early_once) as (url, offsets):
        path = download_file(url, tmp_path / "a.zip", expected_size=len(PAYLOAD), expected_sha256=SHA,
                             show_progress=False, timeout=5, retry_wait=0.01)  # fmt: skip
    assert path.read_bytes() == PAYLOAD
    assert offsets == [0, half]  # the end of a body without a length is a dropped connection, not the file
