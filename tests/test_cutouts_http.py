"""The HTTP cutout client against the loopback emulator: faults, retries, rate limit, validation.

The reference for every good answer is :func:`emulator.render_cutout`, computed independently of
the FITS bytes the server sends and the parsing the client does, in the canonical g, r, z order.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import numpy as np
import pytest
import requests
from astropy.io import fits

from stronglens.cutouts import emulator as em
from stronglens.cutouts.http import (
    CutoutValidationError,
    FetchResult,
    LegacySurveyClient,
    RateLimiter,
    parse_cutout_fits,
    parse_retry_after,
)
from stronglens.cutouts.settings import CutoutSettings

# Small timings keep the suite fast while keeping every delay well separated from the others.  Only
# the fault test uses the short timeout: a busy 2-core machine can stall a clean answer for ~0.3 s.
TIMEOUT_S = 0.6
RELAXED_TIMEOUT_S = 10.0
BACKOFF_S = 0.005


#: The project's cutout settings (dbt_project.yml): size 101, bands grz.
SETTINGS = CutoutSettings.project_defaults()


def parse(body: bytes, **options: object) -> np.ndarray:
    """parse_cutout_fits with the project's size and bands unless ``options`` say otherwise."""
    return parse_cutout_fits(body, **{"bands": SETTINGS.bands, "size": SETTINGS.size, **options})  # type: ignore[arg-type]


def urls(
    server: em.CutoutEmulator, items: Iterable[tuple[object, float, float]]
) -> Iterator[tuple[object, str]]:
    """``(sample_id, ra, dec)`` -> ``(sample_id, url)`` requests on the emulator (lazily)."""
    return ((sid, server.url_for(ra, dec)) for sid, ra, dec in items)


def client_for(server: em.CutoutEmulator, **overrides: object) -> LegacySurveyClient:
    options: dict[str, object] = dict(
        concurrency=4,
        rate_limit_per_s=None,
        timeout_s=RELAXED_TIMEOUT_S,
        connect_timeout_s=1.0,
        max_attempts=4,
        backoff_base_s=BACKOFF_S,
        backoff_cap_s=0.05,
        seed=7,
    )
    options.update(overrides)
    return LegacySurveyClient.from_settings(SETTINGS, **options)


def positions(n: int, seed: int) -> list[tuple[int, float, float]]:
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, np.sin(np.radians(32.375)), n)))
    # On the emulator's 1e-6 deg position grid, so the server renders exactly the position asked for.
    ra, dec = np.round(ra, 6) % 360.0, np.round(dec, 6)
    return [(i, float(r), float(d)) for i, (r, d) in enumerate(zip(ra, dec, strict=True))]


def by_id(results: Sequence[FetchResult]) -> dict[object, FetchResult]:
    ids = [r.sample_id for r in results]
    assert len(ids) == len(set(ids)), "a sample came back more than once"
    return {r.sample_id: r for r in results}


def assert_matches_render(result: FetchResult, ra: float, dec: float, bands: str = "grz") -> None:
    assert result.status == "ok", result.reason
    assert result.cutout is not None
    assert result.cutout.dtype == np.float32 and result.cutout.shape == (101, 101, len(bands))
    np.testing.assert_array_equal(result.cutout, em.render_cutout(ra, dec, bands))


def test_normal_answers_are_complete_exact_and_reuse_connections() -> None:
    wanted = positions(40, seed=1)
    with em.CutoutEmulator(latency_s=0.005) as server, client_for(server, concurrency=4) as client:
        results = by_id(list(client.fetch_many(urls(server, wanted))))
        assert server.request_count == len(wanted)
        # Keep-alive through the pooled session: never more TCP connections than worker threads.
        assert len(server.connections) <= 4
    assert set(results) == {w[0] for w in wanted}
    for sample_id, ra, dec in wanted:
        r = results[sample_id]
        assert_matches_render(r, ra, dec)
        assert r.attempts == 1 and r.reason is None and r.bytes > 3 * 101 * 101 * 4
        assert r.url == server.url_for(ra, dec)
        assert datetime.fromisoformat(r.fetched_at).tzinfo is not None


# (faults for the first requests of one position, expected status, attempts, reason fragment)
FAULT_CASES: list[tuple[list[em.Fault], str, int, str | None]] = [
    ([em.HttpError(500)] * 3, "ok", 4, None),
    ([em.HttpError(502), em.HttpError(503), em.HttpError(504)], "ok", 4, None),
    ([em.HttpError(503)] * 10, "failed", 4, "gave up after 4 attempts; last: HTTP 503"),
    ([em.HttpError(429, retry_after="0")], "ok", 2, None),
    ([em.HttpError(429)], "ok", 2, None),
    ([em.HttpError(429, retry_after="3600")], "failed", 1, "Retry-After 3600 s > max_retry_after_s"),
    ([em.HttpError(404)], "failed", 1, "HTTP 404 (not retried)"),
    ([em.HttpError(400)], "failed", 1, "HTTP 400 (not retried)"),
    ([em.Slow(2 * TIMEOUT_S)], "ok", 2, None),
    ([em.Slow(2 * TIMEOUT_S)] * 10, "failed", 4, "Timeout"),
    ([em.Trickle(chunks=6, delay_s=TIMEOUT_S / 2)], "ok", 2, None),
    ([em.Truncated(0.5)], "ok", 2, None),
    ([em.Truncated(0.01)] * 10, "failed", 4, "transport error"),
    ([em.Html()], "failed", 1, "body is not FITS"),
    ([em.WrongShape(64)], "failed", 1, "shape (3, 64, 64)"),
    ([em.BandOrder("zrg")], "ok", 1, None),
    ([em.BandOrder("rzg", style="BANDS")], "ok", 1, None),
    ([em.BandOrder("zgr", style="BANDn")], "ok", 1, None),
    ([em.BandOrder("izrg")], "ok", 1, None),
    ([em.BandOrder("grz", style="none")], "failed", 1, "names no bands"),
    ([em.BandOrder("gr")], "failed", 1, "band(s) z missing"),
    ([em.BandOrder("zi")], "failed", 1, "band(s) gr missing"),
    ([em.NonFinite(0.5)], "failed", 1, "finite-pixel fraction below 0.9"),
    ([em.NonFinite(0.05)], "ok", 1, None),
]


def test_every_fault_gets_the_right_status_and_nothing_is_lost() -> None:
    """All fault kinds in one concurrent batch, mixed with clean positions: each sample comes back
    exactly once with the scripted outcome, and the server saw exactly the attempts reported."""
    wanted = positions(len(FAULT_CASES) + 20, seed=2)
    script = {(ra, dec): faults for (faults, *_), (_, ra, dec) in zip(FAULT_CASES, wanted, strict=False)}
    with (
        em.CutoutEmulator(faults_by_position=script) as server,
        client_for(server, timeout_s=TIMEOUT_S) as client,
    ):
        results = by_id(list(client.fetch_many(urls(server, wanted))))
        counts = {sid: server.requests_for(ra, dec) for sid, ra, dec in wanted}
    assert set(results) == {w[0] for w in wanted}
    for i, (sample_id, ra, dec) in enumerate(wanted):
        r = results[sample_id]
        assert counts[sample_id] == r.attempts, (sample_id, r)
        if i >= len(FAULT_CASES):
            assert_matches_render(r, ra, dec)
            continue
        faults, status, attempts, fragment = FAULT_CASES[i]
        assert (r.status, r.attempts) == (status, attempts), (faults, r.reason)
        if status == "failed":
            assert r.cutout is None and fragment is not None and fragment in (r.reason or ""), (
                faults,
                r.reason,
            )
        elif isinstance(faults[0], em.NonFinite):
            expected = em.render_cutout(ra, dec)
            expected[: round(101 * faults[0].fraction)] = np.nan
            np.testing.assert_array_equal(r.cutout, expected)
        else:
            assert_matches_render(r, ra, dec)


def test_retry_after_seconds_is_honoured() -> None:
    (sid, ra, dec), *_ = positions(1, seed=3)
    with em.CutoutEmulator(faults_by_position={(ra, dec): [em.HttpError(429, retry_after="1")]}) as server:
        with client_for(server) as client:
            (result,) = client.fetch_many(urls(server, [(sid, ra, dec)]))
        first, second = (t for t, _ in server.arrivals)
    assert result.status == "ok" and result.attempts == 2
    assert second - first >= 1.0


def test_retry_after_parsing() -> None:
    now = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after("0", now) == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=42), usegmt=True), now) == 42.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=42), usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-5", "nan", "inf", "Mon, 99 Foo 2025 99:99:99 GMT"):
        assert parse_retry_after(bad, now) is None, bad


def reference_token_bucket(arrivals: Sequence[float], rate: float, burst: int) -> list[float]:
    """Send times of FIFO requests through a classic token bucket (tokens counted explicitly)."""
    tokens, last, sends = float(burst), -math.inf, []
    for t_req in arrivals:
        t = max(t_req, last) if last > -math.inf else t_req
        if last > -math.inf:
            tokens = min(float(burst), tokens + (t - last) * rate)
        if tokens < 1.0:
            t += (1.0 - tokens) / rate
            tokens = 1.0
        tokens -= 1.0
        last = t
        sends.append(t)
    return sends


@pytest.mark.parametrize("seed", range(6))
def test_rate_limiter_schedule_equals_a_token_bucket(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rate, burst = float(rng.uniform(0.5, 50.0)), int(rng.integers(1, 6))
    gaps = rng.exponential(1.0 / rate, 300) * rng.choice([0.0, 0.3, 3.0], 300)  # bursts, crowds, idle
    arrivals = np.cumsum(gaps)
    now = [0.0]
    limiter = RateLimiter(rate, burst, clock=lambda: now[0], sleep=lambda s: None)
    got = []
    for t in arrivals:
        now[0] = float(t)
        got.append(limiter.reserve())
    np.testing.assert_allclose(got, reference_token_bucket(arrivals.tolist(), rate, burst), rtol=0, atol=1e-9)


def test_rate_limiter_pause_holds_back_every_slot() -> None:
    now = [10.0]
    limiter = RateLimiter(None, clock=lambda: now[0], sleep=lambda s: None)
    assert limiter.reserve() == 10.0
    limiter.pause_until(12.5)
    now[0] = 11.0
    assert limiter.reserve() == 12.5
    limiter.pause_until(11.0)  # an earlier pause never shortens a later one
    assert limiter.reserve() == 12.5
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(0.0)


def test_global_rate_limit_holds_across_threads() -> None:
    rate, n = 20.0, 24
    wanted = positions(n, seed=4)
    with em.CutoutEmulator() as server, client_for(server, concurrency=8, rate_limit_per_s=rate) as client:
        start = time.monotonic()
        results = list(client.fetch_many(urls(server, wanted)))
        elapsed = time.monotonic() - start
        arrivals = np.array(sorted(t for t, _ in server.arrivals))
    assert all(r.status == "ok" for r in results) and len(results) == n
    assert elapsed >= (n - 1) / rate
    # Any k+1 consecutive arrivals span k intervals, less 1.5 intervals (75 ms) of scheduling jitter
    # on a busy machine; without the shared limiter all 24 would arrive within a few milliseconds.
    for k in range(2, n):
        assert np.min(arrivals[k:] - arrivals[:-k]) >= (k - 1.5) / rate, k


def test_fetch_many_reads_ahead_boundedly_and_stops_when_closed() -> None:
    pulled = [0]

    def endless():
        for item in positions(10_000, seed=5):
            pulled[0] += 1
            yield item

    with em.CutoutEmulator(latency_s=0.01) as server, client_for(server, concurrency=3) as client:
        stream = client.fetch_many(urls(server, endless()))
        first = [next(stream) for _ in range(4)]
        stream.close()
        served = server.request_count
    assert all(r.status == "ok" for r in first)
    assert pulled[0] <= 4 + 2 * 3 and served <= pulled[0]


def test_invalid_urls_and_unexpected_errors_are_results_not_exceptions() -> None:
    class Exploding(requests.Session):
        def get(self, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
            raise RuntimeError("boom")

    client = LegacySurveyClient.from_settings(SETTINGS, session=Exploding(), seed=0)
    bad = [
        ("none", None),
        ("empty", ""),
        ("ftp", "ftp://127.0.0.1:9/x"),
        ("relative", "viewer/fits-cutout?ra=1"),
    ]
    results = by_id(list(client.fetch_many([*bad, ("boom", "http://127.0.0.1:9/viewer/fits-cutout?ra=1")])))
    for sid, _ in bad:
        assert results[sid].status == "failed" and results[sid].attempts == 0
        assert "invalid URL" in (results[sid].reason or "")
    assert results["boom"].status == "failed" and "RuntimeError: boom" in (results["boom"].reason or "")


def test_backoff_is_full_jitter_below_the_exponential_ceiling() -> None:
    client = LegacySurveyClient.from_settings(SETTINGS, backoff_base_s=0.5, backoff_cap_s=3.0, seed=11)
    draws = np.array([[client.backoff_s(k) for k in range(1, 7)] for _ in range(2000)])
    ceilings = np.minimum(3.0, 0.5 * 2.0 ** np.arange(6))
    assert np.all(draws >= 0) and np.all(draws <= ceilings)
    np.testing.assert_allclose(draws.mean(axis=0), ceilings / 2, rtol=0.08)  # uniform on [0, ceiling]
    again = LegacySurveyClient.from_settings(SETTINGS, backoff_base_s=0.5, backoff_cap_s=3.0, seed=11)
    assert [again.backoff_s(k) for k in range(1, 7)] == draws[0].tolist()


# The files are truncated and bit-flipped on purpose: astropy warns about each one before the
# parser raises the validation error this test asserts, so its warnings are expected noise here.
@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_parse_rejects_every_truncation_and_garbage_with_a_validation_error() -> None:
    body = em.cutout_fits_bytes(150.0, 2.0, "grz", 101, 0.262)
    np.testing.assert_array_equal(parse(body), em.render_cutout(150.0, 2.0))
    data_end = 2880 + 3 * 101 * 101 * 4  # one header block, then the cube; the rest is FITS padding
    rng = np.random.default_rng(0)
    for cut in [*rng.integers(0, data_end, 40).tolist(), 0, 2879, 2880, 5760, data_end - 1]:
        with pytest.raises(CutoutValidationError):
            parse(body[:cut])
    for cut in (data_end, len(body) - 1):  # only padding missing: every pixel is there
        np.testing.assert_array_equal(parse(body[:cut]), em.render_cutout(150.0, 2.0))
    for _ in range(40):
        noisy = bytearray(body)
        where = rng.integers(0, 2880, 8)  # corrupt the header
        noisy[where[0] : where[0] + 1] = b"\x00"
        for w in where[1:]:
            noisy[w] = int(rng.integers(0, 256))
        try:
            out = parse(bytes(noisy))
        except CutoutValidationError:
            continue
        assert out.shape == (101, 101, 3) and out.dtype == np.float32
    with pytest.raises(CutoutValidationError, match="not FITS"):
        parse(rng.bytes(5000))


def fits_body(cube: np.ndarray, **keys: object) -> bytes:
    header = fits.Header()
    for k, v in keys.items():
        header[k] = v
    buffer = io.BytesIO()
    fits.PrimaryHDU(cube, header=header).writeto(buffer)
    return buffer.getvalue()


def test_parse_header_rules() -> None:
    cube = np.stack([np.full((101, 101), v, np.float32) for v in (1.0, 2.0, 3.0)])
    out = parse(fits_body(cube, BANDS="z r g"))  # separators tolerated
    np.testing.assert_array_equal(out[0, 0], [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(parse(fits_body(cube, BANDS="zrg"), bands="rz")[0, 0], [2.0, 1.0])
    with pytest.raises(CutoutValidationError, match="disagrees"):
        parse(fits_body(cube, BANDS="grz", BAND0="z", BAND1="r", BAND2="g"))
    with pytest.raises(CutoutValidationError, match="lacks BAND2"):
        parse(fits_body(cube, BAND0="g", BAND1="r"))
    with pytest.raises(CutoutValidationError, match="distinct"):
        parse(fits_body(cube, BANDS="ggz"))
    with pytest.raises(CutoutValidationError, match="BITPIX=-64"):
        parse(fits_body(cube.astype(np.float64), BANDS="grz"))
    with pytest.raises(CutoutValidationError, match="shape"):
        parse(fits_body(cube[0], BANDS="g"))
    with pytest.raises(CutoutValidationError, match="shape"):
        parse(fits_body(cube, BANDS="grz"), size=64)
    inf = cube.copy()
    inf[2, :20] = np.inf
    with pytest.raises(CutoutValidationError, match=r"z=0\.802"):
        parse(fits_body(inf, BANDS="grz"), min_finite_fraction=0.9)
    assert parse(fits_body(inf, BANDS="grz"), min_finite_fraction=0.8).shape == (101, 101, 3)


def test_emulator_stops_itself_after_its_lifetime() -> None:
    server = em.CutoutEmulator(max_lifetime_s=0.2)
    server.start()
    url = server.url_template.format(ra=1, dec=2, layer="x", pixscale=0.262, bands="grz", size=101)
    assert requests.get(url, timeout=2).status_code == 200
    time.sleep(0.6)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=2)
    server.stop()  # idempotent after the watchdog
    assert server.request_count == 1
