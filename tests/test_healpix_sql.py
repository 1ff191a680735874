"""healpix_nest (macros/healpix.sql) must equal healpy.ang2pix(nside, theta, phi, nest=True) EXACTLY.

The train/val/test split is keyed on these pixels, so one row landing in a neighbouring pixel is a
leak. Every comparison renders the macro with plain Jinja (tests/sqlmacros.py), runs it in an
in-memory DuckDB over numpy arrays, and compares with healpy fed theta = np.radians(90 - dec),
phi = np.radians(ra) in float64. Inputs: millions of uniform points at several nsides, every order
0..29, and the adversarial cases of the algorithm -- the poles, the |z| = 2/3 polar-cap boundary
(asin(2/3) and its ulp neighbours), the theta = 0.01 and pi - 0.01 switch to sin(theta), ra at
0/360 and beyond (healpy normalises phi modulo 2pi first), and points on pixel boundaries and
corners. A dbt subprocess checks that the macro also compiles, and fails cleanly, under dbt itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import healpy as hp
import jinja2
import numpy as np
import pyarrow as pa
import pytest

from tests.sqlmacros import MACRO_DIR, CompilerError, load_macros, render

MAX_ORDER = 29
#: nsides of the 2-million-point comparison: both ends, the project's split nside (64) and two more.
BULK_NSIDES = (1, 64, 2**11, 2**20, 2**29)
BULK_POINTS = 2_000_000
PER_ORDER_POINTS = 20_000
#: Points within 0.02 rad of a pole per order: near the poles 1 - cos(theta) cancels, which is why
#: Healpix_cxx switches to sin(theta) for theta < 0.01; at high orders the two formulas disagree.
PER_ORDER_POLE_POINTS = 4_000
#: Upper bound on the rendered SQL for plain column names: the expression writes its repeated parts
#: out (SQL cannot bind names), and this guards against a change that makes that text explode.
MAX_SQL_CHARS = 32_000
TWOTHIRD = 2.0 / 3.0
STH_THETAS = (0.01, 3.14159 - 0.01)  # Healpix_cxx ang2pix switches to sin(theta) beyond these


@pytest.fixture(scope="module")
def macros() -> Any:
    return load_macros("healpix.sql")


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def sql_pixels(
    con: duckdb.DuckDBPyConnection, macros: Any, ra: np.ndarray, dec: np.ndarray, nside: int
) -> np.ndarray:
    """healpix_nest over (ra, dec) float64 arrays, as int64 (fails on NULL: none are expected here)."""
    con.register("points", pa.table({"ra": np.asarray(ra, np.float64), "dec": np.asarray(dec, np.float64)}))
    sql = render(macros, "healpix_nest", "ra", "dec", nside)
    result = con.sql(f"select {sql} as pix from points").fetchnumpy()["pix"]
    assert not np.ma.is_masked(result), f"nside {nside}: NULL pixels for valid input"
    return np.asarray(result, dtype=np.int64)


def healpy_pixels(ra: np.ndarray, dec: np.ndarray, nside: int) -> np.ndarray:
    return hp.ang2pix(nside, np.radians(90.0 - np.asarray(dec)), np.radians(np.asarray(ra)), nest=True)


def assert_same_pixels(ra: np.ndarray, dec: np.ndarray, got: np.ndarray, nside: int) -> None:
    """Exact equality, or a message naming the first differing points so they can be replayed."""
    expected = healpy_pixels(ra, dec, nside)
    bad = np.flatnonzero(got != expected)
    examples = [(repr(ra[i]), repr(dec[i]), int(got[i]), int(expected[i])) for i in bad[:5]]
    assert bad.size == 0, (
        f"nside {nside}: {bad.size} of {ra.size} pixels differ from healpy; "
        f"(ra, dec, sql, healpy): {examples}"
    )


def uniform_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0.0, 360.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def ulp_steps(x: float, k: int) -> np.ndarray:
    """x and its k nearest float64 neighbours on each side."""
    steps = [np.float64(x)]
    up = down = np.float64(x)
    for _ in range(k):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        steps += [up, down]
    return np.array(steps)


def cap_boundary_window(sign: float) -> np.ndarray:
    """Declinations ulp by ulp around sign * asin(2/3), where |z| = |cos(theta)| crosses 2/3."""
    return ulp_steps(sign * float(np.degrees(np.arcsin(TWOTHIRD))), 150)


def sth_window(theta: float) -> np.ndarray:
    """Declinations ulp by ulp around the one whose theta = radians(90 - dec) is the have_sth limit."""
    return ulp_steps(90.0 - float(np.degrees(theta)), 60)


def sth_switch_points(con: duckdb.DuckDBPyConnection, nside: int) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) ulp-close to the have_sth limits at which the two forms of Healpix_cxx's tmp,
    n*sin(theta)/sqrt((1+|z|)/3) and n*sqrt(3*(1-|z|)), give different jp = floor(tp*tmp): there
    the pixel depends on switching form on the right side of the limit. cos and sin come from
    DuckDB, i.e. the C library Healpix_cxx also calls; every other step is IEEE arithmetic."""
    dec = np.concatenate([sth_window(theta) for theta in STH_THETAS])
    con.register("sth", pa.table({"theta": np.radians(90.0 - dec)}))
    trig = con.sql("select cos(theta) as z, sin(theta) as s from sth").fetchnumpy()
    za = np.abs(trig["z"])
    tmp_sqrt = nside * np.sqrt(3.0 * (1.0 - za))
    tmp_sin = nside * trig["s"] / np.sqrt((1.0 + za) / 3.0)
    lo, hi = np.minimum(tmp_sqrt, tmp_sin), np.maximum(tmp_sqrt, tmp_sin)
    # floor(tp*lo) < k <= floor(tp*hi) for tp in [k/hi, k/lo); aim at its middle with ra in (0, 90),
    # where tt = tp = (ra * (pi/180)) * (2/pi), then keep the ra ulp neighbours that land inside.
    k = np.ceil(0.5 * lo)
    ra_aim = np.degrees(0.5 * (k / hi + k / lo) * (np.pi / 2))
    ra = ra_aim[:, None] + np.arange(-40, 41) * np.spacing(ra_aim)[:, None]
    tp = (ra * (np.pi / 180.0)) * (2.0 / np.pi)
    differs = np.floor(tp * lo[:, None]) != np.floor(tp * hi[:, None])
    rows, cols = np.nonzero(differs)
    return ra[rows, cols], dec[rows]


def adversarial_decs() -> np.ndarray:
    """Declinations at the poles, the polar-cap boundary and the have_sth switch, ulp by ulp."""
    decs = [
        ulp_steps(90.0, 60),
        ulp_steps(-90.0, 60),
        np.array([90 - 1e-12, -90 + 1e-12, 90 - 1e-9, -90 + 1e-9, 0.0, -0.0, 1e-300, -1e-300]),
        cap_boundary_window(1.0),
        cap_boundary_window(-1.0),
        ulp_steps(41.8103149, 20),
        ulp_steps(-41.8103149, 20),
        *(sth_window(theta) for theta in STH_THETAS),
    ]
    out = np.concatenate(decs)
    return out[np.abs(out) <= 90.0]


def adversarial_ras() -> np.ndarray:
    """ra at 0/360 and their neighbours, face meridians, and values healpy reduces modulo 2pi."""
    specials = [0.0, -0.0, 360.0, 359.9999999999, 45.0, 90.0, 180.0, 270.0, 720.0, -360.0, -90.0]
    specials += [-1e-15, 1e-300, -359.99999999999994, 1e6 + 0.1, -1e6 - 0.1, 1e300, -1e300]
    edges = [ulp_steps(x, 2) for x in (0.0, 90.0, 180.0, 270.0, 360.0, 22.5, 11.25)]
    return np.concatenate([np.array(specials), *edges])


def test_adversarial_windows_straddle_the_boundaries() -> None:
    """Each ulp window holds points on both sides of its boundary (|z| = 2/3, theta = have_sth limit)."""
    for sign in (1.0, -1.0):
        z = sign * np.cos(np.radians(90.0 - cap_boundary_window(sign)))
        assert (z < TWOTHIRD).any() and (z > TWOTHIRD).any(), f"cap window {sign:+}"
    for limit in STH_THETAS:
        theta = np.radians(90.0 - sth_window(limit))
        assert (theta < limit).any() and (theta > limit).any(), f"have_sth window {limit}"


@pytest.mark.parametrize("nside", BULK_NSIDES)
def test_uniform_points_match_healpy(con: duckdb.DuckDBPyConnection, macros: Any, nside: int) -> None:
    ra, dec = uniform_sphere(np.random.default_rng(nside), BULK_POINTS)
    assert_same_pixels(ra, dec, sql_pixels(con, macros, ra, dec, nside), nside)


@pytest.fixture(scope="module")
def adversarial_grid() -> tuple[np.ndarray, np.ndarray]:
    """Every adversarial ra with every adversarial dec."""
    ra, dec = np.meshgrid(adversarial_ras(), adversarial_decs())
    return ra.ravel(), dec.ravel()


@pytest.mark.parametrize("order", range(MAX_ORDER + 1))
def test_every_order_matches_healpy(
    con: duckdb.DuckDBPyConnection,
    macros: Any,
    adversarial_grid: tuple[np.ndarray, np.ndarray],
    order: int,
) -> None:
    """Uniform points (a quarter with ra over +-3 turns, which healpy folds into [0, 2pi) first),
    points near both poles (theta log-uniform in [1e-12, 0.02]), the adversarial grid, and ra = 360
    next to ra = 0 (phi = 2pi wraps to 0: same pixel), in one query."""
    rng = np.random.default_rng(1000 + order)
    ra, dec = uniform_sphere(rng, PER_ORDER_POINTS)
    ra[: PER_ORDER_POINTS // 4] = rng.uniform(-1080.0, 1080.0, PER_ORDER_POINTS // 4)
    pole_theta = np.degrees(10.0 ** rng.uniform(-12.0, np.log10(0.02), PER_ORDER_POLE_POINTS))
    pole_dec = np.where(rng.random(PER_ORDER_POLE_POINTS) < 0.5, 90.0 - pole_theta, pole_theta - 90.0)
    pole_ra = rng.uniform(0.0, 360.0, PER_ORDER_POLE_POINTS)
    wrap_dec = np.array([-89.0, -60.0, -41.8103149, -10.0, 0.0, 10.0, 41.8103149, 60.0, 89.0])
    ra = np.concatenate(
        [ra, pole_ra, adversarial_grid[0], np.full(wrap_dec.size, 360.0), np.zeros(wrap_dec.size)]
    )
    dec = np.concatenate([dec, pole_dec, adversarial_grid[1], wrap_dec, wrap_dec])
    nside = 2**order
    got = sql_pixels(con, macros, ra, dec, nside)
    assert_same_pixels(ra, dec, got, nside)
    np.testing.assert_array_equal(got[-2 * wrap_dec.size : -wrap_dec.size], got[-wrap_dec.size :])


@pytest.mark.parametrize("nside", (1, 2, 16, 256, 2**12, 2**20, 2**29))
def test_pixel_boundaries_and_corners_match_healpy(
    con: duckdb.DuckDBPyConnection, macros: Any, nside: int
) -> None:
    """Points on pixel edges and corners (healpy.boundaries), pixel centres, and their ulp neighbours."""
    rng = np.random.default_rng(nside + 7)
    pixels = rng.integers(0, 12 * nside * nside, 2_000)
    edges = hp.boundaries(nside, pixels, step=4, nest=True)  # (pixel, xyz, point)
    lon, lat = hp.vec2ang(edges.transpose(0, 2, 1).reshape(-1, 3), lonlat=True)
    centre_lon, centre_lat = hp.pix2ang(nside, pixels, nest=True, lonlat=True)
    lon, lat = np.concatenate([lon, centre_lon]), np.concatenate([lat, centre_lat])
    ra = np.concatenate([lon, np.nextafter(lon, np.inf), np.nextafter(lon, -np.inf), lon, lon])
    dec = np.concatenate([lat, lat, lat, np.nextafter(lat, np.inf), np.nextafter(lat, -np.inf)])
    keep = np.abs(dec) <= 90.0
    ra, dec = ra[keep], dec[keep]
    assert_same_pixels(ra, dec, sql_pixels(con, macros, ra, dec, nside), nside)


@pytest.mark.parametrize("nside", (2**10, 2**20, 2**29))
def test_have_sth_switch_points_match_healpy(con: duckdb.DuckDBPyConnection, macros: Any, nside: int) -> None:
    """Points on both sides of theta = 0.01 and theta = 3.14159 - 0.01 whose pixel depends on the
    side: a threshold off by one ulp of theta would move some of them."""
    ra, dec = sth_switch_points(con, nside)
    theta = np.radians(90.0 - dec)
    for limit in STH_THETAS:
        near = np.abs(theta - limit) < 1e-9
        assert (theta[near] < limit).sum() >= 5 and (theta[near] > limit).sum() >= 5, (nside, limit)
    assert_same_pixels(ra, dec, sql_pixels(con, macros, ra, dec, nside), nside)


def test_invalid_coordinates_give_null(con: duckdb.DuckDBPyConnection, macros: Any) -> None:
    """NULL, NaN, infinite ra/dec and |dec| > 90 (healpy raises there) give NULL, never an error."""
    bad = [(None, 10.0), (10.0, None), (np.nan, 10.0), (10.0, np.nan), (np.inf, 10.0), (-np.inf, 10.0)]
    bad += [(10.0, np.inf), (10.0, -np.inf), (10.0, 90.000001), (10.0, -90.000001), (10.0, 1e300)]
    ra = pa.array([r for r, _ in bad], pa.float64())
    dec = pa.array([d for _, d in bad], pa.float64())
    con.register("invalid", pa.table({"ra": ra, "dec": dec}))
    for nside in (1, 64, 2**29):
        sql = render(macros, "healpix_nest", "ra", "dec", nside)
        rows = con.sql(f"select {sql} as pix from invalid").fetchall()
        assert rows == [(None,)] * len(bad), f"nside {nside}: {list(zip(bad, rows, strict=True))}"


def test_result_is_bigint_and_other_input_types_are_cast(con: duckdb.DuckDBPyConnection, macros: Any) -> None:
    """DECIMAL, FLOAT and INTEGER inputs are computed on their DOUBLE value, as healpy sees it."""
    rng = np.random.default_rng(5)
    ra, dec = uniform_sphere(rng, 5_000)
    ra_text = [f"{x:.8f}" for x in ra]
    dec_text = [f"{x:.8f}" for x in dec]
    con.register(
        "typed",
        pa.table(
            {
                "ra_dec": pa.array([Decimal(x) for x in ra_text], pa.decimal128(12, 8)),
                "dec_dec": pa.array([Decimal(x) for x in dec_text], pa.decimal128(12, 8)),
                "ra_f32": ra.astype(np.float32),
                "dec_f32": dec.astype(np.float32),
                "ra_int": np.round(ra).astype(np.int32) % 360,
                "dec_int": np.round(dec).astype(np.int32),
            }
        ),
    )
    for suffix, ra_ref, dec_ref in (
        ("dec", np.array(ra_text, dtype=np.float64), np.array(dec_text, dtype=np.float64)),
        ("f32", ra.astype(np.float32).astype(np.float64), dec.astype(np.float32).astype(np.float64)),
        ("int", (np.round(ra) % 360).astype(np.float64), np.round(dec)),
    ):
        sql = render(macros, "healpix_nest", f"ra_{suffix}", f"dec_{suffix}", 2**16)
        got = con.sql(f"select {sql} as pix, typeof({sql}) as kind from typed").fetchnumpy()
        assert set(got["kind"]) == {"BIGINT"}
        assert_same_pixels(ra_ref, dec_ref, np.asarray(got["pix"], np.int64), 2**16)


def test_spread_bits_interleaves_zeros(con: duckdb.DuckDBPyConnection, macros: Any) -> None:
    """healpix_spread_bits(v, nbits) moves bit b < nbits to bit 2b and drops the rest: every 12-bit
    value, random ones below 2**nbits, and random (also negative) BIGINTs beyond it."""
    rng = np.random.default_rng(11)
    for nbits in range(MAX_ORDER + 1):
        values = np.concatenate(
            [
                np.arange(min(2**nbits, 4096)),
                rng.integers(0, 2**nbits, 4096),
                rng.integers(-(2**40), 2**40, 4096),
            ]
        ).astype(np.int64)
        con.register("bits", pa.table({"v": values}))
        sql = render(macros, "healpix_spread_bits", "v", nbits)
        got = con.sql(f"select {sql} as s from bits").fetchnumpy()["s"]
        bit = np.arange(nbits, dtype=np.int64)
        expected = (((values[:, None] >> bit) & 1) << (2 * bit)).sum(axis=1)
        np.testing.assert_array_equal(got, expected, err_msg=f"nbits {nbits}")


@pytest.mark.parametrize("order", range(MAX_ORDER + 1))
def test_rendered_sql_stays_small(macros: Any, order: int) -> None:
    assert len(render(macros, "healpix_nest", "ra", "dec", 2**order)) < MAX_SQL_CHARS


BAD_NSIDES = (0, 3, 1000, -4, 2**30, 1024.0, "1024", True, None)


@pytest.mark.parametrize("nside", BAD_NSIDES)
def test_bad_nside_is_a_compiler_error(macros: Any, nside: object) -> None:
    with pytest.raises(CompilerError, match=r"healpix_nest: nside must be .*power of two"):
        render(macros, "healpix_nest", "ra", "dec", nside)


@pytest.mark.parametrize("nside", BAD_NSIDES)
def test_bad_nside_in_bare_jinja_renders_sql_that_fails(
    con: duckdb.DuckDBPyConnection, nside: object
) -> None:
    """Without dbt's `exceptions` the macro renders error('<message>'), so the query cannot run."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    bare = env.from_string((MACRO_DIR / "healpix.sql").read_text()).module
    sql = render(bare, "healpix_nest", "ra", "dec", nside)
    assert sql.startswith("error(")
    with pytest.raises(duckdb.Error, match=r"healpix_nest: nside must be .*power of two"):
        con.sql(f"select {sql} as pix").fetchall()


def run_dbt(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """dbt in a subprocess (dbt keeps global state in-process) on a throwaway project."""
    dbt = Path(sys.executable).with_name("dbt")
    flags = ["--project-dir", str(project), "--profiles-dir", str(project), "--no-use-colors"]
    return subprocess.run([str(dbt), *args, *flags], capture_output=True, text=True, timeout=300, check=False)


def test_macro_compiles_and_fails_cleanly_under_dbt(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    """dbt's own (sandboxed) Jinja: a valid call compiles to SQL that matches healpy, a bad nside stops
    compilation with the macro's message, and macros/_healpix.yml parses."""
    (tmp_path / "macros").mkdir()
    (tmp_path / "models").mkdir()
    for name in ("healpix.sql", "_healpix.yml"):
        (tmp_path / "macros" / name).write_text((MACRO_DIR / name).read_text())
    (tmp_path / "dbt_project.yml").write_text(
        "name: healpix_check\nversion: '1.0'\nconfig-version: 2\nprofile: healpix_check\n"
    )
    (tmp_path / "profiles.yml").write_text(
        textwrap.dedent(
            """\
            healpix_check:
              target: dev
              outputs:
                dev:
                  type: duckdb
                  path: ":memory:"
            """
        )
    )
    points = "(values (0.0, 90.0), (360.0, -41.8103149), (123.4, 5.6), (-20.0, -89.99)) as p(ra, dec)"
    (tmp_path / "models" / "good.sql").write_text(
        f"select ra, dec, {{{{ healpix_nest('ra', 'dec', 1024) }}}} as pix from {points}"
    )
    done = run_dbt(tmp_path, "compile")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = con.sql(next(tmp_path.glob("target/compiled/**/good.sql")).read_text()).fetchnumpy()
    assert_same_pixels(rows["ra"], rows["dec"], np.asarray(rows["pix"], np.int64), 1024)

    failed = run_dbt(tmp_path, "compile", "--inline", "select {{ healpix_nest('ra', 'dec', 48) }} as pix")
    assert failed.returncode != 0
    message = "healpix_nest: nside must be a power of two from 1 to 2**29 (536870912), got 48"
    assert message in failed.stdout + failed.stderr
