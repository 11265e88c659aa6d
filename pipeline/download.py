"""Download stage: fetch any media URL through yt-dlp into a content cache, with retries.

One contract: ``Downloader(opts).fetch(url, start_s=..., end_s=...) -> Downloaded`` or a raised
:class:`DownloadError` whose ``error_type`` / ``transient`` / ``attempts`` the caller turns into
a ``Failure`` row. Every URL (http(s), ``file://``, YouTube, Google Drive, anything yt-dlp
supports) goes through yt-dlp's Python API; plain local paths are returned in place.

Cache: ``cache_dir/<sha256(url|start|end)>.<ext>`` plus a JSON sidecar ``<key>.json``. Ids and
URLs never become file names. yt-dlp writes to a unique ``.tmp-<key>-<uuid>`` name inside the
cache folder and the result is moved into place with ``os.replace``, so readers never see a
half-written file, a killed run leaves only ``.tmp-`` debris (ignored, swept once stale) and
processes racing on one key simply let the last writer win.

Politeness limits are **per worker process**: a module-level registry holds one
``threading.BoundedSemaphore(max_per_host)`` per host plus a minimum interval between download
starts to that host (one download = one yt-dlp run, which may make several HTTP requests). Beam runs many worker processes, so the effective limit across a job is
(number of processes) x ``max_per_host``; size it for that.

Time ranges use yt-dlp's ``download_ranges``, which hands the download to ffmpeg; ffmpeg seeks
with HTTP Range requests, so the server must honour them. yt-dlp cannot cut ``file://`` URLs (or
any format ffmpeg cannot fetch); then the whole file is fetched instead and
``Downloaded.offset_s`` says where the file starts in the source (0.0), so callers always trim
``[start_s - offset_s, end_s - offset_s]`` themselves.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import io
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator, NamedTuple
from urllib.parse import urlsplit

import yt_dlp
from yt_dlp.networking.exceptions import (
    HTTPError,
    IncompleteRead,
    NoSupportingHandlers,
    TransportError,
    UnsupportedRequest,
)
from yt_dlp.utils import (
    ContentTooShortError,
    GeoRestrictedError,
    UnsupportedError,
    YoutubeDLError,
    download_range_func,
    parse_bytes,
)

from pipeline.redact import redact_text, redact_url  # noqa: F401  (redact_url: also imported from here)

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0  # debris older than this cannot belong to a live download (yt-dlp keeps writing)
_MAX_RETRY_AFTER_S = 60.0  # a huge Retry-After must not park a Beam worker for an hour
_SAFE_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")
_UNCUTTABLE_SCHEMES = frozenset({"file"})  # yt-dlp refuses download_ranges for these
# Object stores are read through Beam's filesystems (gs:// needs apache-beam[gcp], s3:// [aws]),
# so inputs staged next to a Dataflow job are fetched and cached like any URL.
_OBJECT_STORE_SCHEMES = frozenset({"gs", "s3", "azfs", "hdfs"})

Section = tuple[float, "float | None"]  # (start_s, end_s) cut out of the source by yt-dlp/ffmpeg


@dataclass(frozen=True)
class DownloadOptions:
    """How the download stage fetches; one instance per pipeline run."""

    cache_dir: str  # local folder; cache key is sha256(url + time range), never the raw id
    timeout_s: float = 30.0  # socket timeout
    retries: int = 3  # extra attempts for transient errors
    backoff_s: float = 1.0  # backoff before retry n (0-based): backoff_s * 2**n + jitter seeded by url
    max_per_host: int = 4  # concurrent downloads per host within one worker process
    min_interval_per_host_s: float = 0.0  # min seconds between download starts to one host (per process)
    cookies_file: str | None = None  # Netscape cookies.txt; never logged, copied or rewritten
    bandwidth_limit: str | None = None  # e.g. "2M" (bytes/s), yt-dlp 'ratelimit'

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.retries < 0 or self.backoff_s < 0:
            raise ValueError("timeout_s must be > 0, retries and backoff_s >= 0")
        if self.max_per_host < 1 or self.min_interval_per_host_s < 0:
            raise ValueError("max_per_host must be >= 1 and min_interval_per_host_s >= 0")
        if self.bandwidth_limit is not None and parse_bytes(self.bandwidth_limit) is None:
            raise ValueError(f"bandwidth_limit {self.bandwidth_limit!r} is not a size like '2M'")


@dataclass(frozen=True)
class Downloaded:
    """A fetched media file.

    ``offset_s`` is the time in the source at which the file's audio starts: ``start_s`` when
    yt-dlp cut the requested range, 0.0 for whole files (local paths, ``file://`` URLs).
    """

    path: str
    from_cache: bool
    attempts: int  # attempts made this time (0 if from cache or a local path)
    offset_s: float = 0.0


class DownloadError(Exception):
    """A fetch that failed; ``str()`` is a one-line message with the URL's query string removed."""

    def __init__(self, error_type: str, message: str = "", *, transient: bool = False,
                 attempts: int = 1) -> None:
        super().__init__(message or error_type)
        self.error_type = error_type
        self.transient = transient
        self.attempts = attempts

    def __reduce__(self):  # keyword-only fields survive pickling (Beam ships exceptions around)
        return (_rebuild_error, (self.error_type, str(self), self.transient, self.attempts))


def _rebuild_error(error_type: str, message: str, transient: bool, attempts: int) -> DownloadError:
    return DownloadError(error_type, message, transient=transient, attempts=attempts)


# -- URLs, keys, redaction ---------------------------------------------------------------------

def _copy_from_store(url: str, outtmpl: str) -> str:
    """Copy an object-store file into the attempt's temp name through Beam's filesystems."""
    from apache_beam.io.filesystems import FileSystems

    ext = os.path.splitext(urlsplit(url).path)[1].lstrip(".") or "bin"
    target = outtmpl.replace("%(ext)s", ext).replace("%%", "%")
    try:
        with FileSystems.open(url) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    except ValueError as exc:  # Beam: no filesystem registered for the scheme
        raise _AttemptFailed(_Failure("unsupported_url", False, f"{exc}")) from exc
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError) or "not found" in str(exc).lower()
        raise _AttemptFailed(_Failure("not_found" if missing else "network", not missing, str(exc))) from exc
    return target


def is_url(uri: str) -> bool:
    """True for ``scheme://...`` strings; a one-letter scheme is a Windows drive, not a URL."""
    return len(urlsplit(uri).scheme) > 1


def cache_key(url: str, start_s: float | None = None, end_s: float | None = None) -> str:
    """Stable cache key of a URL and time range (hex sha256)."""
    rng = "|".join("" if t is None else repr(float(t)) for t in (start_s, end_s))
    return hashlib.sha256(f"{url}|{rng}".encode("utf-8")).hexdigest()


# -- yt-dlp parameters -------------------------------------------------------------------------

class _YtdlpLogger:
    """Sends yt-dlp's chatter to ``logging`` at debug level; errors surface as exceptions."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", redact_text(msg))

    info = warning = error = debug


def read_cookies(path: str) -> io.StringIO:
    """The cookies file as an in-memory Netscape jar.

    yt-dlp rewrites a ``cookiefile`` *path* when it closes (racing processes would clobber it)
    and prints malformed lines, values included, to stderr; an in-memory copy holding only
    well-formed lines avoids both.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    kept = [ln for ln in lines if _cookie_line_ok(ln)]
    if len(kept) != len(lines):
        log.debug("cookies file: skipped %d malformed line(s)", len(lines) - len(kept))
    return io.StringIO("# Netscape HTTP Cookie File\n" + "\n".join(kept) + "\n")


def _cookie_line_ok(line: str) -> bool:
    body = line.removeprefix("#HttpOnly_")
    if body is line and (line.startswith("#") or not line.strip()):
        return False  # comments: the header is re-added by read_cookies
    fields = body.split("\t")
    return len(fields) == 7 and (not fields[4] or re.fullmatch(r"\d+(\.\d+)?", fields[4]) is not None)


def build_params(opts: DownloadOptions, *, outtmpl: str | None = None,
                 section: Section | None = None) -> dict:
    """yt-dlp ``YoutubeDL`` params for one attempt.

    yt-dlp's own retries are off (``Downloader.fetch`` retries with backoff and classifies
    errors); fragment retries stay on because one lost HLS/DASH fragment should not restart a
    whole download.
    """
    params: dict = {
        "quiet": True, "no_warnings": True, "noprogress": True, "logger": _YtdlpLogger(),
        "format": "bestaudio/best", "socket_timeout": opts.timeout_s,
        "retries": 0, "extractor_retries": 0, "fragment_retries": 3,
        "enable_file_urls": True, "noplaylist": True, "overwrites": True, "continuedl": False,
        "color": "no_color",
        # ffmpeg (time ranges) ignores socket_timeout; without this a stalled server hangs it
        "external_downloader_args": {"ffmpeg_i": ["-rw_timeout", str(int(opts.timeout_s * 1e6))]},
    }
    if outtmpl is not None:
        params["outtmpl"] = {"default": outtmpl}
    if opts.cookies_file:
        params["cookiefile"] = read_cookies(opts.cookies_file)
    if opts.bandwidth_limit:
        params["ratelimit"] = parse_bytes(opts.bandwidth_limit)
    if section is not None:
        start, end = section
        params["download_ranges"] = download_range_func(None, [(start, end if end is not None else float("inf"))])
        params["force_keyframes_at_cuts"] = False
    return params


# -- error classification ----------------------------------------------------------------------

class _Failure(NamedTuple):
    error_type: str
    transient: bool
    detail: str
    retry_after_s: float | None = None


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything behind it: yt-dlp keeps causes in ``exc_info`` and ``cause``."""
    out: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(out) < 32:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is seen for seen in out):
            continue
        out.append(e)
        exc_info = getattr(e, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) == 3:
            todo.append(exc_info[1])
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return out


def _is_timeout(e: BaseException) -> bool:
    # requests/urllib3/curl_cffi timeouts do not all derive from the builtin TimeoutError
    return isinstance(e, TimeoutError) or any(c.__name__.endswith(("Timeout", "TimeoutError"))
                                              for c in type(e).__mro__)


def _http_kind(status: int) -> tuple[str, bool]:
    if status == 429 or status == 408:
        return f"http_{status}", True
    if 500 <= status < 600:
        return "http_5xx", True
    return f"http_{status}", False


def _of(*types: type) -> Callable[[BaseException], bool]:
    return lambda e: isinstance(e, types)


# Typed rules, most specific first; each is tried against the whole chain before the next one,
# so a FileNotFoundError behind a generic TransportError still reads as "not_found".
_TYPED_RULES = (
    (_of(UnsupportedError, NoSupportingHandlers, UnsupportedRequest), "unsupported_url", False),
    (_of(FileNotFoundError), "not_found", False),
    (_of(ContentTooShortError, IncompleteRead, http.client.IncompleteRead), "truncated", True),
    (_is_timeout, "timeout", True),
    (_of(ConnectionError), "connection", True),
    (_of(GeoRestrictedError), "geo_restricted", False),
    (_of(TransportError), "network", True),
    (_of(PermissionError), "permission", False),
)

# When yt-dlp's downloader gives up it reports only a message (the exception is gone by then).
_MESSAGE_RULES: tuple[tuple[re.Pattern, str, bool], ...] = (
    (re.compile(r"bytes read, \d+ more expected|Downloaded \d+ bytes, expected|content too short", re.I),
     "truncated", True),
    (re.compile(r"timed out", re.I), "timeout", True),
    (re.compile(r"connection (reset|refused|aborted)|remote end closed", re.I), "connection", True),
    (re.compile(r"cannot be partially downloaded", re.I), "range_unsupported", False),
    # ffmpeg (time ranges) runs with -loglevel quiet: its exit code is all yt-dlp reports, and
    # network trouble (a stall, an expired signed URL) is the usual cause, so retry it.
    (re.compile(r"ffmpeg exited with code", re.I), "ffmpeg_failed", True),
    (re.compile(r"unsupported url", re.I), "unsupported_url", False),
    (re.compile(r"requested format is not available", re.I), "no_format", False),
)
_HTTP_STATUS_MSG = re.compile(r"HTTP Error (\d{3})")


def classify(exc: BaseException) -> _Failure:
    """Error category, transience and a one-line detail for anything yt-dlp raised."""
    chain = _exception_chain(exc)
    for e in chain:
        if isinstance(e, HTTPError):
            kind, transient = _http_kind(e.status)
            return _Failure(kind, transient, f"HTTP {e.status} {e.reason or ''}".strip(), _retry_after(e))
    for matches, kind, transient in _TYPED_RULES:
        if any(matches(e) for e in chain):
            return _Failure(kind, transient, _one_line(exc))
    text = " ".join(str(e) for e in chain)
    if m := _HTTP_STATUS_MSG.search(text):
        kind, transient = _http_kind(int(m.group(1)))
        return _Failure(kind, transient, f"HTTP {m.group(1)}")
    for pattern, kind, transient in _MESSAGE_RULES:
        if pattern.search(text):
            return _Failure(kind, transient, _one_line(exc))
    return _Failure("download_failed", False, _one_line(exc))


def _retry_after(err: HTTPError) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date), if the server sent one."""
    response = getattr(err, "response", None)
    value = (response.headers.get("Retry-After") or "").strip() if response is not None else ""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).replace("\r", " ").split())
    msg = re.sub(r"^ERROR:\s*", "", msg)
    msg = re.sub(r"\s*\(caused by .*\)$", "", msg)  # the cause repeats the message
    msg = redact_text(msg)
    return msg if len(msg) <= 300 else msg[:297] + "..."


# -- per-host politeness (per process) -----------------------------------------------------------

class _HostGate:
    """Concurrency cap and start-interval limiter for one host within this process."""

    def __init__(self, max_concurrent: int) -> None:
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._next_start = 0.0

    def wait_turn(self, interval_s: float) -> None:
        # Reserve the slot under the lock, sleep outside it, so waiters queue in order.
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + interval_s
        if start > now:
            time.sleep(start - now)


_GATES: dict[tuple[str, int], _HostGate] = {}
_GATES_LOCK = threading.Lock()


def _gate(host: str, max_concurrent: int) -> _HostGate:
    with _GATES_LOCK:
        return _GATES.setdefault((host, max_concurrent), _HostGate(max_concurrent))


@contextlib.contextmanager
def _host_turn(url: str, opts: DownloadOptions) -> Iterator[None]:
    host = urlsplit(url).netloc.rsplit("@", 1)[-1].lower()
    if not host:  # file:// and friends: nobody to be polite to
        yield
        return
    gate = _gate(host, opts.max_per_host)
    with gate.slots:
        gate.wait_turn(opts.min_interval_per_host_s)
        yield


# -- cache -------------------------------------------------------------------------------------

class _Cache:
    """``<key>.<ext>`` media plus ``<key>.json`` sidecar; writes are atomic replaces."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def lookup(self, key: str) -> tuple[str, float] | None:
        """(path, offset_s) of a complete entry, or None (missing, partial or corrupt)."""
        try:
            with open(self._sidecar(key), encoding="utf-8") as f:
                meta = json.load(f)
            path = self._media(key, meta["ext"])
            if os.path.getsize(path) == int(meta["size"]):
                return path, float(meta.get("offset_s", 0.0))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no entry, or one a killed run left half done: fetch again
        return None

    def tmp_template(self, key: str) -> tuple[str, str]:
        """(unique temp prefix, yt-dlp outtmpl) for one attempt."""
        prefix = f"{_TMP_PREFIX}{key}-{uuid.uuid4().hex}"
        root = self.root.replace("%", "%%")  # outtmpl is a %-template
        return prefix, os.path.join(root, prefix + ".%(ext)s")

    def commit(self, key: str, produced: str, meta: dict) -> str:
        """Move a finished temp file into place and write its sidecar; returns the final path."""
        ext = os.path.splitext(produced)[1].lstrip(".")
        ext = ext if _SAFE_EXT.match(ext) else "bin"
        digest, size = _sha256_file(produced)
        final = self._media(key, ext)
        os.replace(produced, final)
        sidecar = {**meta, "ext": ext, "size": size, "sha256": digest}
        tmp = os.path.join(self.root, f"{_TMP_PREFIX}{key}-{uuid.uuid4().hex}.json")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(sidecar, f, indent=1, sort_keys=True)
        os.replace(tmp, self._sidecar(key))  # the sidecar last: it is what marks the entry complete
        return final

    def discard(self, prefix: str) -> None:
        """Remove whatever one attempt left (``.part`` files, fragments)."""
        for path in glob.glob(os.path.join(glob.escape(self.root), glob.escape(prefix) + "*")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def sweep_stale(self, key: str, max_age_s: float = _STALE_TMP_S) -> None:
        """Remove temp debris of ``key`` from killed runs; young files may be a live download."""
        cutoff = time.time() - max_age_s
        pattern = os.path.join(glob.escape(self.root), glob.escape(f"{_TMP_PREFIX}{key}-") + "*")
        for path in glob.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                if os.path.getmtime(path) < cutoff:
                    os.remove(path)

    def _media(self, key: str, ext: str) -> str:
        if not _SAFE_EXT.match(ext):
            raise ValueError(f"bad cached extension {ext!r}")
        return os.path.join(self.root, f"{key}.{ext}")

    def _sidecar(self, key: str) -> str:
        return os.path.join(self.root, f"{key}.json")


def _sha256_file(path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# -- the downloader ----------------------------------------------------------------------------

class _AttemptFailed(Exception):
    def __init__(self, failure: _Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class Downloader:
    """Fetches URLs into the cache; safe to share between threads, cheap to build per worker."""

    def __init__(self, opts: DownloadOptions) -> None:
        if opts.cookies_file and not os.access(opts.cookies_file, os.R_OK):
            # a configuration mistake, not a per-item failure: stop before any download
            raise ValueError(f"cookies file {opts.cookies_file!r} does not exist or is not readable")
        self.opts = opts
        self._cache = _Cache(opts.cache_dir)

    def fetch(self, url: str, *, start_s: float | None = None, end_s: float | None = None) -> Downloaded:
        """Local file holding ``url`` (cut to ``[start_s, end_s]`` when yt-dlp can), or DownloadError."""
        if not is_url(url):
            return self._local(url)
        section = None if start_s is None and end_s is None else (
            float(start_s or 0.0), None if end_s is None else float(end_s))
        if section is not None and urlsplit(url).scheme.lower() in _UNCUTTABLE_SCHEMES | _OBJECT_STORE_SCHEMES:
            section = None  # yt-dlp would abort; fetch whole, offset_s=0 tells the caller
        try:
            return self._fetch_cached(url, section)
        except DownloadError as err:
            if section is None or err.error_type != "range_unsupported":
                raise
            log.debug("%s cannot be cut by yt-dlp; fetching it whole", redact_url(url))
            whole = self._fetch_cached(url, None)
            return Downloaded(whole.path, whole.from_cache, whole.attempts + err.attempts, 0.0)

    def _local(self, path: str) -> Downloaded:
        if not os.path.isfile(path):
            raise DownloadError("not_found", f"not_found: no such local file {path!r}", transient=False,
                                attempts=1)
        return Downloaded(path, from_cache=False, attempts=0)

    def _fetch_cached(self, url: str, section: Section | None) -> Downloaded:
        key = cache_key(url, *(section or (None, None)))
        hit = self._cache.lookup(key)
        if hit is not None:
            return Downloaded(hit[0], from_cache=True, attempts=0, offset_s=hit[1])
        path, attempts = self._download_with_retries(url, section, key)
        self._cache.sweep_stale(key)
        return Downloaded(path, from_cache=False, attempts=attempts, offset_s=section[0] if section else 0.0)

    def _download_with_retries(self, url: str, section: Section | None, key: str) -> tuple[str, int]:
        attempt = 0
        while True:
            attempt += 1
            try:
                with _host_turn(url, self.opts):
                    return self._attempt(url, section, key), attempt
            except _AttemptFailed as failed:
                f = failed.failure
                if not f.transient or attempt > self.opts.retries:
                    raise self._error(url, f, attempt) from failed.__cause__
                delay = self._backoff(url, attempt - 1, f.retry_after_s)
                log.debug("%s: %s, retry %d/%d in %.2fs", redact_url(url), f.error_type, attempt,
                          self.opts.retries, delay)
                time.sleep(delay)

    def _attempt(self, url: str, section: Section | None, key: str) -> str:
        """One yt-dlp run into a unique temp name, then an atomic move into the cache."""
        prefix, outtmpl = self._cache.tmp_template(key)
        try:
            if urlsplit(url).scheme.lower() in _OBJECT_STORE_SCHEMES:
                produced = _copy_from_store(url, outtmpl)
            else:
                params = build_params(self.opts, outtmpl=outtmpl, section=section)
                try:
                    with yt_dlp.YoutubeDL(params) as ydl:
                        info = ydl.extract_info(url, download=True)
                except (YoutubeDLError, OSError) as exc:
                    raise _AttemptFailed(classify(exc)) from exc
                produced = self._produced_file(info, prefix)
            meta = {"url": redact_url(url), "start_s": section[0] if section else None,
                    "end_s": section[1] if section else None,
                    "offset_s": section[0] if section else 0.0}
            return self._cache.commit(key, produced, meta)
        finally:
            self._cache.discard(prefix)

    def _produced_file(self, info: dict | None, prefix: str) -> str:
        """The file yt-dlp wrote for this attempt, checked to be ours and non-empty."""
        if info and info.get("_type") in ("playlist", "multi_video"):
            raise _AttemptFailed(_Failure("playlist", False, "URL names a playlist, not one item"))
        downloads = (info or {}).get("requested_downloads") or []
        path = downloads[0].get("filepath") if downloads else None
        if not path or not os.path.basename(path).startswith(prefix) or not os.path.isfile(path):
            raise _AttemptFailed(_Failure("download_failed", False, "yt-dlp reported no downloaded file"))
        if os.path.getsize(path) == 0:
            raise _AttemptFailed(_Failure("empty", True, "downloaded file is empty"))
        return path

    def _backoff(self, url: str, n: int, retry_after_s: float | None) -> float:
        base = self.opts.backoff_s * 2 ** n
        jitter = random.Random(f"{url}#{n}").uniform(0.0, 0.25 * base)  # spreads hosts, reproducible
        delay = base + jitter
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, _MAX_RETRY_AFTER_S))
        return delay

    def _error(self, url: str, f: _Failure, attempts: int) -> DownloadError:
        plural = "s" if attempts != 1 else ""
        msg = f"{f.error_type}: {f.detail} - {redact_url(url)} ({attempts} attempt{plural})"
        return DownloadError(f.error_type, msg, transient=f.transient, attempts=attempts)
