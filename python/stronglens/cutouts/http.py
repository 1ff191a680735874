"""FITS cutouts from the Legacy Survey viewer over HTTP: the ``legacysurvey`` cutout source.

Why this shape: the service has no documented rate limit and one client measured ~0.9 cutouts/s
sequentially (DOMAIN.md), so bulk work needs *polite* concurrency -- a bounded thread pool whose
requests all pass one shared rate limiter -- plus retries, because a long run will meet timeouts,
429s and 5xx bursts, and a strict check of every body, because a 200 answer can still be an HTML
error page, a truncated file or a cube in an unexpected band order.

Retry rules (per cutout, at most ``max_attempts`` HTTP attempts):

* retried: connection errors, timeouts (including the total per-attempt deadline ``timeout_s``,
  which also bounds a server that trickles a body slowly), bodies cut short of their
  ``Content-Length``, HTTP 429 and 5xx;
* the wait before a retry is ``Retry-After`` when the server sends one (seconds or an HTTP date;
  a 429/503 with ``Retry-After`` also pauses the shared limiter, so *every* thread backs off), else
  exponential back-off with full jitter: ``uniform(0, min(backoff_cap_s, backoff_base_s * 2**(k-1)))``
  after the k-th failed attempt (AWS architecture blog, "Exponential Backoff And Jitter");
* not retried (recorded as failed with the reason): other 4xx, a ``Retry-After`` longer than
  ``max_retry_after_s`` (rerun later: the resume logic fetches what failed), and bodies that arrive
  complete but fail validation (the service would send the same bytes again).

Validation (:func:`parse_cutout_fits`): the body parses as FITS, is complete, the primary HDU is a
float32 cube ``(nbands, size, size)``, the band order comes from the header (``BANDS`` and/or
``BAND0``, ``BAND1``, ...; both must agree when both are present) and every requested band is
present, and each band's finite-pixel fraction reaches ``min_finite_fraction``.  The output is
``(size, size, len(bands))`` float32 with channels in the order of ``bands`` (the ``cutout_bands`` var)
whatever order the server used, rows and columns as stored in the FITS file (row 0 = first FITS
row, i.e. south for the viewer's north-up TAN cutouts).
"""

from __future__ import annotations

import io
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import requests
from astropy.io import fits
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from stronglens.cutouts.settings import CutoutSettings

log = logging.getLogger(__name__)

_FITS_MAGIC = b"SIMPLE  ="
_SNIPPET_CHARS = 80
_READ_CHUNK_BYTES = 65536
_END = object()  # end-of-input sentinel (None could be a caller's item)


class CutoutValidationError(ValueError):
    """A response body is not a usable cutout; the message says what is wrong with it."""


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one cutout request (one per input; ``cutout`` is set iff ``status == 'ok'``).

    ``bytes`` counts the body of the last attempt, ``attempts`` the HTTP attempts made (0 when the
    request was rejected before any), ``fetched_at`` is the UTC ISO-8601 time the outcome was known.
    """

    sample_id: Hashable
    status: Literal["ok", "failed"]
    reason: str | None
    attempts: int
    cutout: np.ndarray | None
    bytes: int
    url: str
    fetched_at: str


def utc_now_iso() -> str:
    """Current UTC time as ISO-8601 with milliseconds (the ``fetched_at`` format)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RateLimiter:
    """A token bucket shared by all threads of a client: at most ``burst`` requests at once after an
    idle spell, then one every ``1 / rate_per_s`` seconds on average.

    Implemented as virtual scheduling (the GCRA form of a token bucket): each :meth:`acquire` books
    the next free slot under a lock and sleeps *outside* it, so waiting threads never hold the lock
    and slots are handed out first come, first served.  ``rate_per_s=None`` disables the rate but
    keeps :meth:`pause_until`, which a 429 with ``Retry-After`` uses to hold back every thread.
    ``clock`` and ``sleep`` are injectable so the schedule can be tested without waiting.
    """

    def __init__(
        self,
        rate_per_s: float | None,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s is not None and not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"rate_per_s must be a positive number or None (no limit), got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self._interval = 0.0 if rate_per_s is None else 1.0 / rate_per_s
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Book the next slot and return the clock time from which the caller may send."""
        with self._lock:
            now = max(self._clock(), self._paused_until)
            self._tat = max(self._tat, now) + self._interval
            return max(now, self._tat - self._burst * self._interval)

    def acquire(self) -> float:
        """Wait for the next slot; return its clock time."""
        send_at = self.reserve()
        delay = send_at - self._clock()
        if delay > 0:
            self._sleep(delay)
        return send_at

    def pause_until(self, clock_time: float) -> None:
        """Hand out no slot before ``clock_time`` (slots already booked are not recalled)."""
        with self._lock:
            self._paused_until = max(self._paused_until, clock_time)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    A date in the past means 0; a missing or unparsable value gives ``None`` (use back-off instead).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; naive results come from '-0000' zones
        when = when.replace(tzinfo=UTC)
    reference = datetime.now(UTC) if now is None else now
    return max(0.0, (when - reference).total_seconds())


def _header_bands(header: fits.Header, nbands: int) -> str:
    """Band order of a cutout cube from ``BANDS`` and/or ``BAND<i>``; raise if absent or inconsistent."""
    from_bands = None
    if "BANDS" in header:
        from_bands = "".join(ch for ch in str(header["BANDS"]).lower() if ch.isalnum())
    indexed = [header.get(f"BAND{i}") for i in range(nbands)]
    from_indexed = None
    if any(v is not None for v in indexed):
        if any(v is None for v in indexed):
            missing = [f"BAND{i}" for i, v in enumerate(indexed) if v is None]
            raise CutoutValidationError(f"header has some BAND<i> keys but lacks {', '.join(missing)}")
        from_indexed = "".join(str(v).strip().lower() for v in indexed)
    if from_bands is not None and from_indexed is not None and from_bands != from_indexed:
        raise CutoutValidationError(
            f"header BANDS={from_bands!r} disagrees with BAND<i> keys {from_indexed!r}"
        )
    order = from_bands if from_bands is not None else from_indexed
    if order is None:
        raise CutoutValidationError("header names no bands (neither BANDS nor BAND0..): band order unknown")
    if len(order) != nbands or len(set(order)) != nbands:
        raise CutoutValidationError(f"header band list {order!r} does not name {nbands} distinct bands")
    return order


def parse_cutout_fits(body: bytes, bands: str, size: int, min_finite_fraction: float = 0.9) -> np.ndarray:
    """Validate a fits-cutout body and return it as ``(size, size, len(bands))`` float32, channels in
    the order of ``bands``.  Raises :class:`CutoutValidationError` naming the first problem found.

    The server may return extra bands (they are dropped) but every requested band must be there.
    """
    if not body.startswith(_FITS_MAGIC):
        raise CutoutValidationError(f"body is not FITS: starts with {body[:_SNIPPET_CHARS]!r}")
    try:
        with fits.open(io.BytesIO(body), memmap=False) as hdul:
            hdu = hdul[0]
            header = hdu.header
            data_start = int(hdul.fileinfo(0)["datLoc"])
            bitpix = header.get("BITPIX")
            axes = tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(int(header.get("NAXIS", 0)), 0, -1))
            if bitpix != -32:
                raise CutoutValidationError(f"primary HDU has BITPIX={bitpix}; expected -32 (float32)")
            if len(axes) != 3 or axes[1:] != (size, size):
                raise CutoutValidationError(
                    f"primary HDU has shape {axes}; expected (nbands, {size}, {size}) for size={size}"
                )
            expected_end = data_start + 4 * math.prod(axes)
            if len(body) < expected_end:
                raise CutoutValidationError(
                    f"body truncated: {len(body)} bytes, the header announces data up to byte {expected_end}"
                )
            order = _header_bands(header, axes[0])
            cube = np.asarray(hdu.data)
    except CutoutValidationError:
        raise
    except Exception as exc:  # untrusted bytes: astropy raises many types on malformed input
        raise CutoutValidationError(f"FITS does not parse: {type(exc).__name__}: {exc}") from exc
    missing = [b for b in bands if b not in order]
    if missing:
        raise CutoutValidationError(
            f"band(s) {''.join(missing)} missing: header says the cube holds {order!r}"
        )
    image = np.ascontiguousarray(np.moveaxis(cube[[order.index(b) for b in bands]], 0, -1), dtype=np.float32)
    finite = np.isfinite(image).mean(axis=(0, 1))
    low = np.flatnonzero(finite < min_finite_fraction)
    if low.size:
        worst = ", ".join(f"{bands[i]}={finite[i]:.3f}" for i in low)
        raise CutoutValidationError(f"finite-pixel fraction below {min_finite_fraction}: {worst}")
    return image


class _DeadlineExceededError(Exception):
    """The per-attempt total time budget ran out while the body was still arriving."""


class _BodyTooLargeError(Exception):
    """The body exceeded ``max_body_bytes``: not a cutout, not worth retrying."""


_RETRYABLE_TRANSPORT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    _DeadlineExceededError,
)


class LegacySurveyClient:
    """Fetch many cutouts from the Legacy Survey viewer (or anything serving the same endpoint).

    Requests are ``(sample_id, url)``: the URL is built once, in SQL (``cutout_manifest.cutout_url``,
    macro ``cutout_url``), so the URL the manifest shows is the URL fetched.  ``size`` and ``bands``
    are what a valid body must hold (:func:`parse_cutout_fits`).  The knobs that are dbt vars have no
    defaults here (they live in ``dbt_project.yml``): :meth:`from_settings` takes them from
    :class:`~stronglens.cutouts.settings.CutoutSettings`.

    One ``requests.Session`` with a connection pool of ``concurrency`` connections is shared by the
    worker threads (keep-alive: no TCP/TLS handshake per cutout); pass ``session`` to supply your own
    (the client then leaves closing it to you).  ``rate_limit_per_s`` (``None`` = no limit) and
    ``rate_burst`` configure the shared :class:`RateLimiter`; retries also pass through it.
    ``seed`` makes the back-off jitter reproducible.  Use as a context manager to close the session.
    """

    def __init__(
        self,
        *,
        size: int,
        bands: str,
        concurrency: int,
        rate_limit_per_s: float | None,
        max_attempts: int,
        backoff_base_s: float,
        rate_burst: int = 1,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        backoff_cap_s: float = 60.0,
        max_retry_after_s: float = 300.0,
        min_finite_fraction: float = 0.9,
        max_body_bytes: int = 16 * 1024 * 1024,
        session: requests.Session | None = None,
        seed: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if not bands or len(set(bands)) != len(bands):
            raise ValueError(f"bands must name distinct bands, e.g. 'grz'; got {bands!r}")
        if (
            min(timeout_s, connect_timeout_s) <= 0
            or min(backoff_base_s, backoff_cap_s, max_retry_after_s) < 0
        ):
            raise ValueError("timeouts must be > 0 and back-off / Retry-After limits >= 0 seconds")
        self.size = size
        self.bands = bands
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_retry_after_s = max_retry_after_s
        self.min_finite_fraction = min_finite_fraction
        self.max_body_bytes = max_body_bytes
        self.limiter = RateLimiter(rate_limit_per_s, rate_burst)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "stronglens-cutouts/1 (python-requests; polite bulk client)"
        self.session = session

    @classmethod
    def from_settings(cls, settings: CutoutSettings, **options: Any) -> LegacySurveyClient:
        """A client with the size, bands, concurrency, rate limit and retries of ``settings``;
        ``options`` set the other constructor arguments (or override those)."""
        values: dict[str, Any] = {
            "size": settings.size,
            "bands": settings.bands,
            "concurrency": settings.concurrency,
            "rate_limit_per_s": settings.rate_limit_per_s,
            "max_attempts": settings.max_attempts,
            "backoff_base_s": settings.backoff_base_s,
            "seed": settings.seed,
        }
        return cls(**{**values, **options})

    def __enter__(self) -> LegacySurveyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session:
            self.session.close()

    def backoff_s(self, failed_attempts: int) -> float:
        """Full-jitter exponential back-off after ``failed_attempts`` failures (see module docstring)."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** (failed_attempts - 1))
        with self._rng_lock:
            return self._rng.uniform(0.0, ceiling)

    def fetch_many(self, requests_: Iterable[tuple[Hashable, str]]) -> Iterator[FetchResult]:
        """Fetch ``(sample_id, url)`` requests; yield one :class:`FetchResult` per request, in
        completion order.  At most ``2 * concurrency`` requests are read ahead from the iterable, so
        memory stays bounded for any input size.  Per-cutout failures are results, never exceptions;
        closing the generator early cancels what has not started.
        """
        items = iter(requests_)
        max_pending = 2 * self.concurrency
        pending: set[Future[FetchResult]] = set()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="cutout-fetch") as pool:
            try:
                exhausted = False
                while True:
                    while not exhausted and len(pending) < max_pending:
                        item = next(items, _END)
                        if item is _END:
                            exhausted = True
                            break
                        sample_id, url = item  # type: ignore[misc]
                        pending.add(pool.submit(self.fetch_one, sample_id, url))
                    if not pending:
                        return
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            finally:
                for future in pending:
                    future.cancel()

    def fetch_one(self, sample_id: Hashable, url: str) -> FetchResult:
        """Fetch and validate one cutout with retries; never raises."""
        try:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return self._failed(sample_id, f"invalid URL {url!r}: expected http(s)://...", 0, 0, str(url))
            return self._fetch_with_retries(sample_id, url)
        except Exception as exc:  # the contract: one bad cutout never fails the batch
            log.exception("unexpected error fetching cutout %r from %s", sample_id, url)
            return self._failed(sample_id, f"unexpected error: {type(exc).__name__}: {exc}", 0, 0, url)

    def _failed(self, sample_id: Hashable, reason: str, attempts: int, nbytes: int, url: str) -> FetchResult:
        return FetchResult(sample_id, "failed", reason, attempts, None, nbytes, url, utc_now_iso())

    def _download(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        """One GET: status, headers and the whole body, within ``timeout_s`` in total."""
        deadline = time.monotonic() + self.timeout_s
        with self.session.get(url, timeout=(self.connect_timeout_s, self.timeout_s), stream=True) as resp:
            chunks = []
            received = 0
            for chunk in resp.iter_content(_READ_CHUNK_BYTES):
                received += len(chunk)
                if received > self.max_body_bytes:
                    raise _BodyTooLargeError(f"body exceeds max_body_bytes={self.max_body_bytes}")
                if time.monotonic() > deadline:
                    raise _DeadlineExceededError(f"body still arriving after timeout_s={self.timeout_s}")
                chunks.append(chunk)
            return resp.status_code, resp.headers, b"".join(chunks)

    def _fetch_with_retries(self, sample_id: Hashable, url: str) -> FetchResult:
        attempts = 0
        while True:
            attempts += 1
            self.limiter.acquire()
            nbytes = 0
            try:
                status, headers, body = self._download(url)
            except _RETRYABLE_TRANSPORT as exc:
                reason = f"transport error: {type(exc).__name__}: {exc}"
                delay = self.backoff_s(attempts)
            except _BodyTooLargeError as exc:
                return self._failed(sample_id, f"not retried: {exc}", attempts, self.max_body_bytes, url)
            except requests.exceptions.RequestException as exc:
                return self._failed(
                    sample_id, f"not retried: {type(exc).__name__}: {exc}", attempts, nbytes, url
                )
            else:
                nbytes = len(body)
                if status == 200:
                    try:
                        cutout = parse_cutout_fits(body, self.bands, self.size, self.min_finite_fraction)
                    except CutoutValidationError as exc:
                        return self._failed(sample_id, f"invalid body: {exc}", attempts, nbytes, url)
                    return FetchResult(sample_id, "ok", None, attempts, cutout, nbytes, url, utc_now_iso())
                snippet = body[:_SNIPPET_CHARS].decode("utf-8", "replace")
                if status != 429 and status < 500:
                    return self._failed(
                        sample_id, f"HTTP {status} (not retried): {snippet!r}", attempts, nbytes, url
                    )
                reason = f"HTTP {status}: {snippet!r}"
                retry_after = parse_retry_after(headers.get("Retry-After"))
                if retry_after is None:
                    delay = self.backoff_s(attempts)
                elif retry_after > self.max_retry_after_s:
                    return self._failed(
                        sample_id,
                        f"HTTP {status} with Retry-After {retry_after:.0f} s > max_retry_after_s="
                        f"{self.max_retry_after_s}; not retried now, a rerun fetches it",
                        attempts,
                        nbytes,
                        url,
                    )
                else:
                    delay = retry_after
                    self.limiter.pause_until(time.monotonic() + retry_after)
            if attempts >= self.max_attempts:
                return self._failed(
                    sample_id, f"gave up after {attempts} attempts; last: {reason}", attempts, nbytes, url
                )
            log.debug(
                "cutout %r attempt %d failed (%s); retrying in %.3f s", sample_id, attempts, reason, delay
            )
            time.sleep(delay)
