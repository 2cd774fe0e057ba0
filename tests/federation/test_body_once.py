"""Request bodies sent to peers are let go once sent, and still travel with a Content-Length."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from cyberpact.federation.peers import body_once


class _Body(bytes):
    """bytes that say when they are freed (bytes take no weak references)."""

    freed = 0

    def __del__(self) -> None:
        type(self).freed += 1


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str | bytes]]]]:
    seen: list[dict[str, str | bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            seen.append(
                {
                    "length": self.headers.get("Content-Length", ""),
                    "encoding": self.headers.get("Transfer-Encoding", ""),
                    "body": self.rfile.read(length),
                }
            )
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_the_body_is_sent_whole_with_its_length_and_then_released(
    server: tuple[str, list[dict[str, str | bytes]]],
) -> None:
    url, seen = server
    data = _Body(bytes(range(256)) * 4096)  # 1 MiB
    freed = _Body.freed
    gc.disable()  # the point is that no collection is needed to free it
    try:
        with httpx.Client() as client:
            content, length = body_once(data)
            del data
            response = client.put(url + "/x", content=content, headers=length)
            assert response.status_code == 200
            del content
            assert _Body.freed == freed + 1, "the sent body is still held"
    finally:
        gc.enable()
    assert seen == [{"length": str(1 << 20), "encoding": "", "body": bytes(range(256)) * 4096}]


def test_a_plain_body_is_what_httpx_keeps_until_the_collector_runs(
    server: tuple[str, list[dict[str, str | bytes]]],
) -> None:
    # Why body_once exists: if httpx ever stops keeping requests in a cycle, it can go.
    url, _ = server
    data = _Body(b"x" * 1024)
    freed = _Body.freed
    gc.disable()
    try:
        with httpx.Client() as client:
            client.put(url + "/x", content=data)
            del data
            assert _Body.freed == freed
    finally:
        gc.enable()
    gc.collect()
    assert _Body.freed == freed + 1
