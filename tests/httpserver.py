"""A loopback HTTP server for offline tests: scripted routes, failures, delays and Range support.

Binds 127.0.0.1 on an ephemeral port and serves from a background thread. Python's
``http.server`` ignores ``Range`` headers, which makes ffmpeg (yt-dlp's downloader for time
ranges) read the wrong audio; this server answers ``Range: bytes=...`` with 206 Partial Content
and supports HEAD, so it behaves like a real static file host.

Usage::

    with LoopbackServer() as server:
        server.add("/a.wav", wav_bytes, fail_first=2)
        url = server.url("/a.wav")
        ...
        assert server.requests("/a.wav") == 3

or the ``http_server`` pytest fixture in ``tests/conftest.py``.
"""
from __future__ import annotations

import html
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_REASONS = {200: "OK", 206: "Partial Content", 404: "Not Found", 416: "Range Not Satisfiable",
            429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class Route:
    """What one path answers. Counters are per route and count every request (HEAD included)."""

    body: bytes
    content_type: str = "audio/wav"
    status: int = 200
    fail_first: int = 0  # answer 500 to the first N requests, then ``status``
    status_sequence: list[int] | None = None  # one status per request; the last one repeats
    delay_s: float = 0.0  # sleep before answering (timeout tests)
    delay_from: int = 0  # only delay from the Nth request on (0-based), e.g. after yt-dlp's probe
    truncate_to: int | None = None  # announce the full length, send only K bytes, close
    headers: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    def next_status(self) -> tuple[int, float]:
        """(status, delay) for the next request; advances the route's request counter."""
        n = self.hits
        self.hits += 1
        return self._status(n), (self.delay_s if n >= self.delay_from else 0.0)

    def _status(self, n: int) -> int:
        if self.status_sequence:
            return self.status_sequence[min(n, len(self.status_sequence) - 1)]
        if n < self.fail_first:
            return 500
        return self.status


@dataclass(frozen=True)
class RequestRecord:
    """One request the server received (for assertions on headers, ranges, counts)."""

    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived


class LoopbackServer:
    """Scripted HTTP server on 127.0.0.1; a context manager that starts and stops it."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._active = 0
        self.peak_concurrency = 0  # most requests in flight at once (per-host limit tests)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "LoopbackServer":
        handler = type("Handler", (_Handler,), {"server_state": self})
        httpd = _QuietServer(("127.0.0.1", 0), handler)
        # Daemon handler threads and no join on close: a test that times out on a delayed
        # route must not wait for the sleeping handler at teardown.
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="loopback-http",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- routes and log --------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server (``path`` may carry a query string)."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def add(self, path: str, body: bytes, content_type: str = "audio/wav", *, status: int = 200,
            fail_first: int = 0, status_sequence: list[int] | None = None, delay_s: float = 0.0,
            delay_from: int = 0, truncate_to: int | None = None,
            headers: dict[str, str] | None = None) -> str:
        """Register (or replace) a route and return its URL. The query string is not matched."""
        route = Route(body, content_type, status, fail_first, list(status_sequence or []) or None,
                      delay_s, delay_from, truncate_to, dict(headers or {}))
        with self._lock:
            self._routes[_norm(path)] = route
        return self.url(path)

    def add_audio_page(self, path: str, audio_path: str, title: str = "test page") -> str:
        """Register an HTML page with ``<audio src=audio_path>`` (yt-dlp's generic extractor)."""
        src = html.escape(self.url(audio_path), quote=True)
        page = (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
                f'<body><audio controls src="{src}"></audio></body></html>').encode()
        return self.add(path, page, "text/html; charset=utf-8")

    def requests(self, path: str, method: str | None = None) -> int:
        """How many requests ``path`` received (optionally only those with ``method``)."""
        return len(self.log(path, method))

    def log(self, path: str | None = None, method: str | None = None) -> list[RequestRecord]:
        """Received requests, oldest first, filtered by path and method when given."""
        with self._lock:
            return [r for r in self._log
                    if (path is None or r.path == _norm(path)) and (method is None or r.method == method)]

    def _take(self, method: str, raw_path: str,
              headers: dict[str, str]) -> tuple[Route | None, int, float]:
        path = _norm(raw_path)
        with self._lock:
            self._log.append(RequestRecord(method, path, headers, time.monotonic()))
            self._active += 1
            self.peak_concurrency = max(self.peak_concurrency, self._active)
            route = self._routes.get(path)
            return (route, *route.next_status()) if route else (None, 404, 0.0)

    def _done(self) -> None:
        with self._lock:
            self._active -= 1


class _QuietServer(ThreadingHTTPServer):
    """Clients hanging up early is normal here (yt-dlp's generic extractor reads 512 bytes and
    closes; ffmpeg drops connections when it seeks; timeout tests give up): do not print it."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exception(), (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _norm(path: str) -> str:
    return "/" + urlsplit(path).path.lstrip("/")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(first, last)`` inclusive for a single ``bytes=`` range, None without one, "bad" if unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multi-range or junk: RFC 9110 lets a server ignore it and send 200
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        return (max(0, size - n), size - 1) if n and size else "bad"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "bad"
    return start, end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: LoopbackServer  # set on the per-server subclass

    def log_message(self, format, *args):  # noqa: A002 - keep pytest output clean
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        route, status, delay = self.server_state._take(self.command, self.path, dict(self.headers.items()))
        try:
            if delay:
                time.sleep(delay)
            self._respond(route, status, head)
        finally:
            self.server_state._done()

    def _respond(self, route: Route | None, status: int, head: bool) -> None:
        if route is None or status >= 400:
            return self._send_error(status, route)
        body = route.body
        rng = parse_range(self.headers.get("Range"), len(body))
        if rng == "bad":
            return self._send_error(416, route, {"Content-Range": f"bytes */{len(body)}"})
        if rng is not None:
            first, last = rng
            status, body = 206, body[first:last + 1]
            extra = {"Content-Range": f"bytes {first}-{last}/{len(route.body)}"}
        else:
            extra = {}
        self.send_response(status, _REASONS.get(status))
        self._headers(route, len(body), {**extra, "Content-Type": route.content_type})
        if head:
            return
        if route.truncate_to is not None and route.truncate_to < len(body):
            self._write(body[:route.truncate_to])
            self.close_connection = True  # the client sees EOF short of Content-Length
            return
        self._write(body)

    def _send_error(self, status: int, route: Route | None, extra: dict[str, str] | None = None) -> None:
        body = f"{status} {_REASONS.get(status, 'Error')}\n".encode()
        self.send_response(status, _REASONS.get(status))
        self._headers(route, len(body), {**(extra or {}), "Content-Type": "text/plain"})
        if self.command != "HEAD":
            self._write(body)

    def _headers(self, route: Route | None, length: int, extra: dict[str, str]) -> None:
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(length), **extra,
                   **(route.headers if route else {})}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeouts, ffmpeg seeking)
