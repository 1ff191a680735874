"""A loopback HTTP server that emulates the Legacy Survey ``fits-cutout`` endpoint, with scripted faults.

Why: the HTTP cutout client must be shown to survive what a long bulk run meets (slow answers,
429 with ``Retry-After``, bursts of 5xx, truncated bodies, HTML error pages, wrong shapes, cubes in
another band order) without touching the real service; the benchmark needs a server with a known
latency.  The server binds 127.0.0.1 on a free port, serves every answer from
:func:`render_cutout` (deterministic in ``(ra, dec, band)``, so a test can compare what the client
returns with an independent rendering), and records what it saw (request counts per position,
arrival times, TCP connections) for assertions about retries, rate limits and connection reuse.

Faults are scripted two ways, both consumed in order:

* ``faults_by_position``: ``{(ra, dec): [fault, fault, ...]}``: the k-th request for that position
  (coordinates rounded to 6 decimals) gets the k-th fault; later requests are answered normally;
* ``faults_by_request``: ``{n: fault}``: the n-th request the server receives (0-based, all
  positions) gets that fault; it wins over a position script.

Bounded and self-stopping: a watchdog stops the server after ``max_lifetime_s`` even if a test
forgets to; idle keep-alive connections are closed after ``idle_timeout_s``; handler threads are
daemons.  Use it as a context manager.
"""

from __future__ import annotations

import io
import threading
import time
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import numpy as np
from astropy.io import fits

#: Paths answered like the viewer's (``cutout.fits`` is an alias of ``fits-cutout``).
CUTOUT_PATHS = ("/viewer/fits-cutout", "/viewer/cutout.fits")
#: Peak amplitude per band (nanomaggies/pixel) of the rendered galaxy: distinct, so a channel mix-up shows.
BAND_AMPLITUDE = {"g": 1.0, "r": 2.0, "i": 2.5, "z": 3.0}
NOISE_SIGMA = 0.01
POSITION_DECIMALS = 6


@dataclass(frozen=True)
class HttpError:
    """Answer with ``status`` (e.g. 429, 500, 503, 404), optionally with a ``Retry-After`` header value."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Truncated:
    """Announce the full ``Content-Length`` but send only ``fraction`` of the body, then close."""

    fraction: float = 0.5


@dataclass(frozen=True)
class Html:
    """Answer 200 with an HTML page instead of FITS (what a web front end does on an error)."""


@dataclass(frozen=True)
class WrongShape:
    """Answer with a valid FITS cube of ``size x size`` pixels instead of the size asked for."""

    size: int = 64


@dataclass(frozen=True)
class BandOrder:
    """Serve the planes in ``order`` (e.g. ``'zrg'``, or ``'gr'`` for a missing band) and describe them
    in the header with ``style``: ``'BANDS'``, ``'BANDn'`` (BAND0, BAND1, ...), ``'both'`` or ``'none'``."""

    order: str
    style: str = "both"


@dataclass(frozen=True)
class Slow:
    """Wait ``delay_s`` (on top of the server latency) before answering normally."""

    delay_s: float


@dataclass(frozen=True)
class Trickle:
    """Send the body in ``chunks`` pieces with ``delay_s`` between them: every gap stays below a read
    timeout while the whole answer takes longer than a total deadline."""

    chunks: int
    delay_s: float


@dataclass(frozen=True)
class NonFinite:
    """Answer normally but with the first ``fraction`` of the rows of every band set to NaN."""

    fraction: float


Fault = HttpError | Truncated | Html | WrongShape | BandOrder | Slow | Trickle | NonFinite


def position_key(ra: float, dec: float) -> tuple[float, float]:
    """How the server identifies a position: coordinates rounded to 6 decimals (0.0036")."""
    return round(float(ra), POSITION_DECIMALS), round(float(dec), POSITION_DECIMALS)


def render_cutout(ra: float, dec: float, bands: str = "grz", size: int = 101) -> np.ndarray:
    """The deterministic image the emulator serves for ``(ra, dec)``: ``(size, size, len(bands))``
    float32, channels in the order of ``bands``.

    Each band is a round Gaussian galaxy (width and centre offset derived from the position) with a
    band-specific amplitude plus seeded noise seeded per ``(position, band)``, so every band differs
    and a band's pixels do not depend on which other bands were asked for.
    """
    key_ra, key_dec = position_key(ra, dec)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = (size - 1) / 2.0
    planes = []
    for band in bands:
        seed = zlib.crc32(f"{key_ra:.6f},{key_dec:.6f},{band}".encode())
        rng = np.random.default_rng(seed)
        sigma = 2.0 + (seed % 7)
        dx, dy = rng.uniform(-2.0, 2.0, size=2)
        galaxy = BAND_AMPLITUDE.get(band, 1.0) * np.exp(
            -((xx - centre - dx) ** 2 + (yy - centre - dy) ** 2) / (2.0 * sigma**2)
        )
        planes.append(galaxy + rng.normal(0.0, NOISE_SIGMA, size=(size, size)))
    return np.stack(planes, axis=-1).astype(np.float32)


def cutout_fits_bytes(
    ra: float, dec: float, bands: str, size: int, pixscale: float, band_style: str = "both"
) -> bytes:
    """A fits-cutout body as the viewer writes it: float32 cube ``(nbands, size, size)`` in the order
    of ``bands``, TAN WCS centred at CRPIX = (size + 1) / 2, band keys per ``band_style``."""
    cube = np.moveaxis(render_cutout(ra, dec, bands, size), -1, 0)
    header = fits.Header()
    header["CTYPE1"] = "RA---TAN"
    header["CTYPE2"] = "DEC--TAN"
    header["CRVAL1"] = ra
    header["CRVAL2"] = dec
    header["CRPIX1"] = (size + 1) / 2.0
    header["CRPIX2"] = (size + 1) / 2.0
    header["CD1_1"] = -pixscale / 3600.0
    header["CD1_2"] = 0.0
    header["CD2_1"] = 0.0
    header["CD2_2"] = pixscale / 3600.0
    if band_style in ("BANDS", "both"):
        header["BANDS"] = bands
    if band_style in ("BANDn", "both"):
        for i, band in enumerate(bands):
            header[f"BAND{i}"] = band
    buffer = io.BytesIO()
    fits.PrimaryHDU(cube, header=header).writeto(buffer)
    return buffer.getvalue()


class _Server(ThreadingHTTPServer):
    """Daemon handler threads, and a listen backlog for many simultaneous connections (the default of
    5 drops SYNs when 32 clients connect at once, and each drop costs the client a 1 s retransmit)."""

    daemon_threads = True
    request_queue_size = 256


HTML_PAGE = b"<!DOCTYPE html><html><head><title>Error</title></head><body>No cutout here</body></html>"


class CutoutEmulator:
    """The loopback fits-cutout server (see the module docstring); start it with ``with``."""

    def __init__(
        self,
        latency_s: float = 0.0,
        faults_by_position: Mapping[tuple[float, float], Sequence[Fault]] | None = None,
        faults_by_request: Mapping[int, Fault] | None = None,
        pixscale: float = 0.262,
        max_lifetime_s: float = 300.0,
        idle_timeout_s: float = 5.0,
    ) -> None:
        self.latency_s = latency_s
        self.pixscale = pixscale
        self.max_lifetime_s = max_lifetime_s
        self.idle_timeout_s = idle_timeout_s
        self._by_position = {position_key(*k): list(v) for k, v in (faults_by_position or {}).items()}
        self._by_request = dict(faults_by_request or {})
        self._lock = threading.Lock()
        self.request_count = 0
        self.position_counts: Counter[tuple[float, float]] = Counter()
        #: ``(monotonic arrival time, position)`` of every cutout request, in arrival order.
        self.arrivals: list[tuple[float, tuple[float, float]]] = []
        #: Status code sent for each cutout request, in arrival order.
        self.statuses: list[int] = []
        self.connections: set[tuple[str, int]] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Timer | None = None
        self._stopped = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> CutoutEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("emulator already started; use a new CutoutEmulator per run")
        server = _Server(("127.0.0.1", 0), _make_handler(self))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="cutout-emulator", daemon=True
        )
        self._thread.start()
        self._watchdog = threading.Timer(self.max_lifetime_s, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()

    def stop(self) -> None:
        """Stop serving and release the port; safe to call more than once and from any thread."""
        with self._lock:
            if self._stopped.is_set() or self._server is None:
                return
            self._stopped.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.cancel()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url_template(self) -> str:
        """The client's ``url_template`` for this server (same query as the real endpoint)."""
        return (
            f"http://127.0.0.1:{self.port}/viewer/fits-cutout?ra={{ra}}&dec={{dec}}&layer={{layer}}"
            "&pixscale={pixscale}&bands={bands}&size={size}"
        )

    def url_for(self, ra: float, dec: float, bands: str = "grz", size: int = 101) -> str:
        """A request URL for a position on this server, as cutout_manifest.cutout_url spells it for
        the real endpoint (RA/Dec with 7 decimals; layer and pixel scale of DR10)."""
        return self.url_template.format(
            ra=f"{ra:.7f}", dec=f"{dec:.7f}", layer="ls-dr10-south", pixscale=0.262, bands=bands, size=size
        )

    def requests_for(self, ra: float, dec: float) -> int:
        """How many cutout requests arrived for a position."""
        with self._lock:
            return self.position_counts[position_key(ra, dec)]

    # -- request handling ----------------------------------------------------------------------
    def _register(self, key: tuple[float, float], client: tuple[str, int]) -> Fault | None:
        with self._lock:
            index = self.request_count
            self.request_count += 1
            nth = self.position_counts[key]
            self.position_counts[key] += 1
            self.arrivals.append((time.monotonic(), key))
            self.connections.add(client)
            if index in self._by_request:
                return self._by_request[index]
            script = self._by_position.get(key, [])
            return script[nth] if nth < len(script) else None

    def _record_status(self, status: int) -> None:
        with self._lock:
            self.statuses.append(status)


def _make_handler(emulator: CutoutEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection reuse is observable
        timeout = emulator.idle_timeout_s

        def log_message(self, format: str, *args: object) -> None:
            """Silence the per-request stderr log."""

        def _send(
            self, status: int, body: bytes, content_type: str, extra: Mapping[str, str] | None = None
        ) -> None:
            emulator._record_status(status)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
                self.close_connection = True

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            if parts.path not in CUTOUT_PATHS:
                self._send(404, b"not found", "text/plain")
                return
            query = parse_qs(parts.query)
            try:
                ra = float(query["ra"][0])
                dec = float(query["dec"][0])
                bands = query.get("bands", ["grz"])[0]
                size = int(query.get("size", ["101"])[0])
            except (KeyError, ValueError):
                self._send(400, b"bad request: need ra, dec (floats), bands, size (int)", "text/plain")
                return
            fault = emulator._register(position_key(ra, dec), self.client_address)
            delay = emulator.latency_s + (fault.delay_s if isinstance(fault, Slow) else 0.0)
            if delay > 0:
                time.sleep(delay)
            if isinstance(fault, HttpError):
                extra = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
                self._send(fault.status, f"error {fault.status}".encode(), "text/plain", extra)
                return
            if isinstance(fault, Html):
                self._send(200, HTML_PAGE, "text/html")
                return
            served_bands, style, served_size = bands, "both", size
            if isinstance(fault, BandOrder):
                served_bands, style = fault.order, fault.style
            elif isinstance(fault, WrongShape):
                served_size = fault.size
            body = cutout_fits_bytes(ra, dec, served_bands, served_size, emulator.pixscale, style)
            if isinstance(fault, NonFinite):
                body = _with_nan_rows(body, fault.fraction)
            if isinstance(fault, Truncated | Trickle):
                emulator._record_status(200)
                self.send_response(200)
                self.send_header("Content-Type", "image/fits")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if isinstance(fault, Truncated):
                    self.wfile.write(body[: int(len(body) * fault.fraction)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                for piece in np.array_split(np.frombuffer(body, dtype=np.uint8), fault.chunks):
                    self.wfile.write(piece.tobytes())
                    self.wfile.flush()
                    time.sleep(fault.delay_s)
                return
            self._send(200, body, "image/fits")

    return Handler


def _with_nan_rows(body: bytes, fraction: float) -> bytes:
    """Rewrite a cutout body with the first ``fraction`` of each band's rows set to NaN."""
    with fits.open(io.BytesIO(body)) as hdul:
        cube = np.array(hdul[0].data)
        header = hdul[0].header.copy()
    cube[:, : round(cube.shape[1] * fraction), :] = np.nan
    buffer = io.BytesIO()
    fits.PrimaryHDU(cube, header=header).writeto(buffer)
    return buffer.getvalue()
