"""The zones crossmatch macros (macros/crossmatch.sql) must agree EXACTLY with astropy.

Every comparison renders a macro, runs it in an in-memory DuckDB on tables registered from numpy, and
checks the same (left, right) pair set as astropy ``search_around_sky`` (or the same nearest match as
``match_coordinates_sky`` cut at the radius) with separations equal to 1e-6 arcsec. Inputs are random
clusters plus the adversarial cases of the zones algorithm: RA wrap-around at 0/360, |dec| > 85 and
the exact poles, pairs built just inside/outside the radius at every position angle (this exercises
the alpha(r, dec) RA window at its tangent points), several radii and cell sizes, self-matches and
duplicate coordinates. Before each comparison the test asserts that no pair lies within 1e-9
(relative) of the radius, where a float tie would make the reference itself ambiguous.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import astropy.units as u
import duckdb
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import SkyCoord, match_coordinates_sky, search_around_sky

from tests.sqlmacros import CompilerError, load_macros, render

RADII_ARCSEC = (0.5, 1.0, 11.0, 60.0, 1800.0)
SEP_TOL_ARCSEC = 1e-6
TIE_REL_TOL = 1e-9


@dataclass(frozen=True)
class Catalog:
    """Ids and ICRS coordinates in degrees; ids are unique unless a test says otherwise."""

    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray

    def sky(self) -> SkyCoord:
        """The reference side: astropy coordinates."""
        return SkyCoord(self.ra * u.deg, self.dec * u.deg)

    def table(self) -> pa.Table:
        """The SQL side: an Arrow table DuckDB can register as a relation."""
        return pa.table({"id": self.ids, "ra": self.ra, "dec": self.dec})

    def __add__(self, other: Catalog) -> Catalog:
        """Concatenate, so adversarial points can be mixed into random ones."""
        return Catalog(
            np.concatenate([self.ids, other.ids]),
            np.concatenate([self.ra, other.ra]),
            np.concatenate([self.dec, other.dec]),
        )


def catalog(ra: np.ndarray, dec: np.ndarray, first_id: int = 0) -> Catalog:
    """A catalogue with consecutive BIGINT ids from first_id (disjoint ranges keep ids unique)."""
    ra = np.asarray(ra, dtype=float)
    return Catalog(np.arange(first_id, first_id + ra.size, dtype=np.int64), ra, np.asarray(dec, dtype=float))


def uniform_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform in solid angle (uniform in sin dec), so poles are sampled fairly too."""
    return rng.uniform(0.0, 360.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def offsets(
    ra: np.ndarray, dec: np.ndarray, sep_deg: np.ndarray, pa_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points at separation sep_deg and position angle pa_deg (east of north) from (ra, dec).

    Built with unit vectors and atan2, which stay accurate to ~1e-16 rad at the poles; astropy's
    directional_offset_by goes through asin there and misplaces a 0.5" offset by ~1e-5 relative,
    which would blur the just-inside/just-outside cases.
    """
    a, d, s, p = (np.radians(np.asarray(x, dtype=float)) for x in (ra, dec, sep_deg, pa_deg))
    centre = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    north = np.stack([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)])
    east = np.stack([-np.sin(a), np.cos(a), np.zeros_like(a)])
    v = np.cos(s) * centre + np.sin(s) * (np.cos(p) * north + np.sin(p) * east)
    return np.degrees(np.arctan2(v[1], v[0])) % 360.0, np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1])))


def neighbours(rng: np.random.Generator, base: Catalog, n: int, max_sep_deg: float, first_id: int) -> Catalog:
    """n points at random separations in [0, max_sep_deg] around random members of base."""
    pick = rng.integers(0, base.ids.size, n)
    ra, dec = offsets(
        base.ra[pick], base.dec[pick], rng.uniform(0.0, max_sep_deg, n), rng.uniform(0.0, 360.0, n)
    )
    return catalog(ra, dec, first_id)


@pytest.fixture(scope="module")
def macros() -> object:
    """The macros of crossmatch.sql, rendered outside dbt."""
    return load_macros("crossmatch.sql")


@pytest.fixture()
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory DuckDB per test, so registered tables never leak between tests."""
    connection = duckdb.connect()
    yield connection
    connection.close()


def run_sql(
    con: duckdb.DuckDBPyConnection,
    macros: object,
    macro: str,
    left: Catalog,
    right: Catalog | None,
    radius_arcsec: float,
    **kwargs: object,
) -> dict[tuple[object, object], float]:
    """Register left as `l` (and right as `r`; None means a self-match on `l`), run, return pairs."""
    con.register("l", left.table())
    right_name = "l"
    if right is not None:
        con.register("r", right.table())
        right_name = "r"
    sql = render(macros, macro, "l", right_name, "id", "id", radius_arcsec, **kwargs)
    rows = con.sql(sql).fetchall()
    got = {(lid, rid): sep for lid, rid, sep in rows}
    assert len(got) == len(rows), f"{macro} returned duplicate (l_id, r_id) rows"
    return got


def assert_no_ties(left: Catalog, right: Catalog, radius_arcsec: float) -> None:
    """The reference is only unambiguous if no separation is within TIE_REL_TOL of the radius."""
    if left.ids.size == 0 or right.ids.size == 0:
        return
    _, _, sep, _ = search_around_sky(
        left.sky(), right.sky(), radius_arcsec * (1 + 10 * TIE_REL_TOL) * u.arcsec
    )
    close = np.abs(sep.arcsec / radius_arcsec - 1.0) <= TIE_REL_TOL
    assert not close.any(), "test data has a pair at the radius within float tolerance: change the data"


def reference_pairs(
    left: Catalog, right: Catalog, radius_arcsec: float, exclude_self: bool = False
) -> dict[tuple[object, object], float]:
    """search_around_sky as {(l_id, r_id): sep_arcsec}; exclude_self drops equal ids."""
    assert_no_ties(left, right, radius_arcsec)
    if left.ids.size == 0 or right.ids.size == 0:
        return {}
    i, j, sep, _ = search_around_sky(left.sky(), right.sky(), radius_arcsec * u.arcsec)
    keep = left.ids[i] != right.ids[j] if exclude_self else np.ones(i.size, dtype=bool)
    pairs = zip(left.ids[i][keep].tolist(), right.ids[j][keep].tolist(), strict=True)
    return dict(zip(pairs, sep.arcsec[keep], strict=True))


def reference_nearest(
    left: Catalog, right: Catalog, radius_arcsec: float, nthneighbor: int = 1
) -> dict[tuple[object, object], float]:
    """match_coordinates_sky cut at the radius (nthneighbor=2 for a self-match without self)."""
    assert_no_ties(left, right, radius_arcsec)
    idx, sep, _ = match_coordinates_sky(left.sky(), right.sky(), nthneighbor=nthneighbor)
    keep = sep.arcsec <= radius_arcsec
    pairs = zip(left.ids[keep].tolist(), right.ids[idx[keep]].tolist(), strict=True)
    return dict(zip(pairs, sep.arcsec[keep], strict=True))


def assert_same(got: dict, want: dict, label: str) -> None:
    """Identical pair sets and separations within SEP_TOL_ARCSEC, with a readable diff."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, (
        f"{label}: {len(missing)} pairs missing (first {missing[:5]}), "
        f"{len(extra)} extra (first {extra[:5]}) out of {len(want)} expected"
    )
    if want:
        keys = list(want)
        diff = np.abs(np.array([got[k] for k in keys]) - np.array([want[k] for k in keys]))
        assert diff.max() <= SEP_TOL_ARCSEC, f"{label}: separation off by {diff.max():.3g} arcsec"


def check_both(
    con: duckdb.DuckDBPyConnection,
    macros: object,
    left: Catalog,
    right: Catalog,
    radius_arcsec: float,
    label: str,
    **kwargs: object,
) -> int:
    """Compare zones_pairs and zones_nearest with astropy; return the number of pairs (to assert on)."""
    want = reference_pairs(left, right, radius_arcsec)
    assert_same(run_sql(con, macros, "zones_pairs", left, right, radius_arcsec, **kwargs), want, label)
    assert_same(
        run_sql(con, macros, "zones_nearest", left, right, radius_arcsec, **kwargs),
        reference_nearest(left, right, radius_arcsec),
        label + " nearest",
    )
    return len(want)


@pytest.mark.parametrize("radius_arcsec", RADII_ARCSEC)
def test_random_clusters_match_astropy(con, macros, radius_arcsec: float) -> None:
    """All-sky background plus clusters at up to 2r, so every radius has many pairs and near misses."""
    rng = np.random.default_rng(int(radius_arcsec * 10))
    r_deg = radius_arcsec / 3600
    right = catalog(*uniform_sphere(rng, 3000))
    right = right + neighbours(rng, right, 1000, 2 * r_deg, first_id=10_000)
    left = neighbours(rng, right, 1500, 2 * r_deg, first_id=0) + catalog(*uniform_sphere(rng, 500), 50_000)
    assert check_both(con, macros, left, right, radius_arcsec, f"random r={radius_arcsec}") > 500


@pytest.mark.parametrize("radius_arcsec", (11.0, 60.0, 1800.0))
def test_ra_wraparound(con, macros, radius_arcsec: float) -> None:
    """Centres hugging ra = 0/360 on both sides, at dec where the RA window is wide."""
    rng = np.random.default_rng(7)
    r_deg = radius_arcsec / 3600
    n = 400
    dec = rng.choice([-75.0, -30.0, 0.0, 45.0, 80.0, 87.0], n) + rng.uniform(-0.01, 0.01, n)
    edge = r_deg / np.cos(np.radians(dec))
    ra = np.where(rng.random(n) < 0.5, rng.uniform(0, 2 * edge), 360.0 - rng.uniform(0, 2 * edge))
    base = catalog(ra, dec)
    right = neighbours(rng, base, 2000, 2 * r_deg, first_id=0) + catalog(
        [0.0, 360.0 - 1e-12], [0.0, 0.0], 9000
    )
    left = neighbours(rng, base, 800, 2 * r_deg, first_id=0)
    assert (left.ra < 1).any() and (left.ra > 359).any()
    assert check_both(con, macros, left, right, radius_arcsec, f"wrap r={radius_arcsec}") > 300


@pytest.mark.parametrize("radius_arcsec", (1.0, 60.0, 1800.0))
def test_near_and_at_the_poles(con, macros, radius_arcsec: float) -> None:
    """|dec| > 85 (denser towards the pole) and points exactly at dec = +-90 with several ra."""
    rng = np.random.default_rng(11)
    r_deg = radius_arcsec / 3600
    n = 300
    hemisphere = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    base = catalog(rng.uniform(0, 360, n), hemisphere * (90.0 - rng.uniform(0, 5.0, n) ** 3 / 25))
    poles = catalog(
        np.tile([0.0, 45.0, 90.0, 180.0, 270.0, 359.9], 2), np.repeat([90.0, -90.0], 6), first_id=80_000
    )
    right = neighbours(rng, base + poles, 1500, 2 * r_deg, first_id=0) + poles
    left = neighbours(rng, base + poles, 600, 2 * r_deg, first_id=0) + catalog(
        [10.0, 200.0, 33.0, 300.0], [90.0, 90.0, -90.0, -90.0], first_id=90_000
    )
    n_pairs = check_both(con, macros, left, right, radius_arcsec, f"poles r={radius_arcsec}")
    assert n_pairs > 200


@pytest.mark.parametrize("radius_arcsec", RADII_ARCSEC)
def test_pairs_just_inside_and_outside_the_radius(con, macros, radius_arcsec: float) -> None:
    """Right points at r (1 -+ 1e-6) and r (1 -+ 1e-8) around each centre, every 2.5 deg of position
    angle (1e-8 is 10x the tie guard, so the reference is unambiguous yet a radius off by 1e-7 fails).

    The angle grid passes close to the points of largest RA offset, where the RA window is tight,
    and the pure-dec offsets, where the dec window is tight.
    """
    rng = np.random.default_rng(3)
    r_deg = radius_arcsec / 3600
    centre_dec = np.array([0.0, -33.0, 60.0, 80.0, -88.0, 89.9, 89.99, 90.0 - 1.5 * r_deg, -90.0])
    centre_ra = np.array([0.0, 359.99999, 120.0, 200.0, 10.0, 0.0, 300.0, 5.0, 77.0])
    centres = catalog(centre_ra, centre_dec)
    pa_deg = np.arange(0.0, 360.0, 2.5)
    k, a = np.meshgrid(np.arange(centres.ids.size), pa_deg, indexing="ij")
    k, a = k.ravel(), a.ravel() + rng.uniform(-1e-3, 1e-3, a.size)
    factors = (1 - 1e-6, 1 - 1e-8, 1 + 1e-8, 1 + 1e-6)
    right = catalog(np.array([]), np.array([]))
    for factor in factors:
        ra, dec = offsets(centres.ra[k], centres.dec[k], np.full(k.size, r_deg * factor), a)
        right = right + catalog(ra, dec, first_id=right.ids.size)
    own_centre = np.tile(k, len(factors))
    built_inside = np.repeat(np.array(factors) < 1, k.size)
    got = run_sql(con, macros, "zones_pairs", centres, right, radius_arcsec)
    found_own = np.array([(int(c), int(i)) in got for c, i in zip(own_centre, right.ids, strict=True)])
    np.testing.assert_array_equal(found_own, built_inside)
    # Centres closer than 2r to each other (the pole cases) also see each other's rings: judge by astropy.
    check_both(con, macros, centres, right, radius_arcsec, f"ring r={radius_arcsec}")


def test_self_match_excluding_self(con, macros) -> None:
    """Merger-style self-match: duplicates (same coordinates, different ids) are kept, self is not."""
    rng = np.random.default_rng(5)
    radius_arcsec = 3.0
    r_deg = radius_arcsec / 3600
    base = catalog(rng.uniform(150, 150.2, 3000), rng.uniform(-0.1, 0.1, 3000))
    cat = base + neighbours(rng, base, 3000, 2 * r_deg, first_id=10_000)
    cat = cat + Catalog(cat.ids[:200] + 100_000, cat.ra[:200], cat.dec[:200])
    want = reference_pairs(cat, cat, radius_arcsec, exclude_self=True)
    got = run_sql(con, macros, "zones_pairs", cat, None, radius_arcsec, exclude_self=True)
    assert_same(got, want, "self pairs")
    assert len(want) > 5000 and all(got[(i, i + 100_000)] == 0.0 for i in cat.ids[:200].tolist())
    # Also through the general (non-self) path: a different relation name with the same rows.
    con.register("l_copy", cat.table())
    sql = render(macros, "zones_pairs", "l", "l_copy", "id", "id", radius_arcsec, exclude_self=True)
    assert_same({(a, b): s for a, b, s in con.sql(sql).fetchall()}, want, "self pairs, general path")
    # Including self: every row pairs with itself at separation 0.
    with_self = run_sql(con, macros, "zones_pairs", cat, None, radius_arcsec)
    assert_same(with_self, reference_pairs(cat, cat, radius_arcsec), "self pairs with self")


def test_self_nearest_is_second_neighbour(con, macros) -> None:
    """Nearest other object of a self-match = match_coordinates_sky(c, c, nthneighbor=2)."""
    rng = np.random.default_rng(6)
    radius_arcsec = 11.0
    base = catalog(*uniform_sphere(rng, 2000))
    cat = base + neighbours(rng, base, 2000, 2 * radius_arcsec / 3600, first_id=10_000)
    got = run_sql(con, macros, "zones_nearest", cat, None, radius_arcsec, exclude_self=True)
    want = reference_nearest(cat, cat, radius_arcsec, nthneighbor=2)
    assert len(want) > 1000
    assert_same(got, want, "self nearest")


def test_duplicate_coordinates_tie_break_on_smallest_right_id(con, macros) -> None:
    """Exact ties (same coordinates, ids listed out of order) go to the smallest r_id."""
    left = catalog([10.0, 200.0, 0.0], [20.0, -89.999, 90.0])
    ring_ra, ring_dec = offsets(left.ra, left.dec, np.full(3, 0.5 / 3600), np.array([30.0, 100.0, 250.0]))
    right = Catalog(
        np.array([7, 3, 5, 12, 11, 41, 40], dtype=np.int64),
        np.array([ring_ra[0]] * 3 + [ring_ra[1]] * 2 + [123.0, 123.0]),
        np.array([ring_dec[0]] * 3 + [ring_dec[1]] * 2 + [90.0, 90.0]),
    )
    pairs = run_sql(con, macros, "zones_pairs", left, right, 1.0)
    assert_same(pairs, reference_pairs(left, right, 1.0), "duplicates")
    nearest = run_sql(con, macros, "zones_nearest", left, right, 1.0)
    assert set(nearest) == {(0, 3), (1, 11), (2, 40)}
    _, ref_sep, _ = match_coordinates_sky(left.sky(), right.sky())
    np.testing.assert_allclose(
        [nearest[(0, 3)], nearest[(1, 11)], nearest[(2, 40)]], ref_sep.arcsec, atol=SEP_TOL_ARCSEC
    )


@pytest.mark.parametrize("cell_factor", (1, 1.5, 2, 3, 8))
def test_cell_factor_does_not_change_results(con, macros, cell_factor: float) -> None:
    """The cell size only trades probes for candidates: 1 (3-4 buckets per window) to 8 agree."""
    rng = np.random.default_rng(8)
    radius_arcsec = 60.0
    base = catalog(rng.uniform(0, 360, 800), np.degrees(np.arcsin(rng.uniform(-1, 1, 800))))
    base = base + catalog(rng.uniform(0, 360, 200), 90 - rng.uniform(0, 0.2, 200), first_id=5000)
    right = neighbours(rng, base, 3000, 2 * radius_arcsec / 3600, first_id=0)
    left = neighbours(rng, base, 1000, 2 * radius_arcsec / 3600, first_id=0)
    n = check_both(
        con, macros, left, right, radius_arcsec, f"cell_factor={cell_factor}", cell_factor=cell_factor
    )
    assert n > 300


def test_string_keys_and_ra_conventions(con, macros) -> None:
    """VARCHAR ids pass through; RA in [-180, 180), in [360, 361) or exactly 360 gives the same result."""
    rng = np.random.default_rng(9)
    radius_arcsec = 11.0
    base = catalog(
        np.concatenate([rng.uniform(-0.01, 0.01, 100) % 360, rng.uniform(0, 360, 100), [0.0]]),
        np.concatenate([rng.uniform(-60, 60, 200), [0.0]]),
    )
    left = neighbours(rng, base, 500, 2 * radius_arcsec / 3600, first_id=0) + catalog([0.0], [0.0], 1000)
    right = neighbours(rng, base, 2000, 2 * radius_arcsec / 3600, first_id=0) + catalog([0.0], [0.0], 5000)
    signed = np.where(left.ra >= 180, left.ra - 360, left.ra)
    shifted = np.where(right.ra < 1e-3, right.ra + 360, np.where(right.ra >= 180, right.ra - 360, right.ra))
    assert (signed < 0).any() and (shifted >= 360).any() and (shifted < 0).any()
    con.register("ls", pa.table({"name": [f"L{i}" for i in left.ids], "ra": signed, "dec": left.dec}))
    con.register(
        "rs", pa.table({"name": [f"R{i}" for i in right.ids], "ra_deg": shifted, "dec_deg": right.dec})
    )
    references = {
        "zones_pairs": reference_pairs(left, right, radius_arcsec),
        "zones_nearest": reference_nearest(left, right, radius_arcsec),
    }
    for macro, reference in references.items():
        sql = render(
            macros, macro, "ls", "rs", "name", "name", radius_arcsec, right_ra="ra_deg", right_dec="dec_deg"
        )
        got = {(a, b): s for a, b, s in con.sql(sql).fetchall()}
        want = {(f"L{a}", f"R{b}"): s for (a, b), s in reference.items()}
        assert len(want) > 300
        assert_same(got, want, f"string keys, {macro}")


def test_rows_without_a_valid_position_never_match(con, macros) -> None:
    """NaN, infinite, null or out-of-range coordinates neither match nor abort the query."""
    rng = np.random.default_rng(12)
    base = catalog(rng.uniform(10, 11, 300), rng.uniform(5, 6, 300))
    left = neighbours(rng, base, 300, 20 / 3600, first_id=0)
    right = neighbours(rng, base, 1000, 20 / 3600, first_id=0)
    bad_ra = [np.nan, np.inf, 10.5, 10.5, -np.inf, 800.0, 10.5]
    bad_dec = [5.5, 5.5, np.nan, 90.5, 5.5, 5.5, -np.inf]
    for macro, reference in (("zones_pairs", reference_pairs), ("zones_nearest", reference_nearest)):
        want = reference(left, right, 11.0)
        assert len(want) > 100
        dirty_left = left + catalog(bad_ra, bad_dec, first_id=5000)
        dirty_right = right + catalog(bad_ra, bad_dec, first_id=5000)
        assert_same(run_sql(con, macros, macro, dirty_left, dirty_right, 11.0), want, f"{macro} bad rows")
        con.register("l_null", pa.table({"id": [1, 2], "ra": [None, 10.5], "dec": [5.5, None]}))
        sql = render(macros, macro, "l_null", "l_null", "id", "id", 11.0)
        assert con.sql(sql).fetchall() == []


@pytest.mark.parametrize("radius_arcsec", (100 * 3600.0, 179 * 3600.0))
def test_hemisphere_sized_radii(con, macros, radius_arcsec: float) -> None:
    """Radii beyond 90 deg: every window contains a pole, every zone has one or two buckets."""
    rng = np.random.default_rng(13)
    left = catalog(*uniform_sphere(rng, 150))
    right = catalog(*uniform_sphere(rng, 300))
    assert check_both(con, macros, left, right, radius_arcsec, f"r={radius_arcsec / 3600} deg") > 1000


def test_empty_inputs(con, macros) -> None:
    """An empty side gives an empty result, not an error (e.g. no candidates in a region)."""
    empty = catalog(np.array([]), np.array([]))
    some = catalog([1.0, 2.0], [3.0, 4.0])
    for left, right in ((empty, some), (some, empty), (empty, empty)):
        for macro in ("zones_pairs", "zones_nearest"):
            assert run_sql(con, macros, macro, left, right, 11.0) == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"radius_arcsec": 0}, "radius_arcsec"),
        ({"radius_arcsec": -1.0}, "radius_arcsec"),
        ({"radius_arcsec": "11"}, "radius_arcsec"),
        ({"radius_arcsec": True}, "radius_arcsec"),
        ({"radius_arcsec": 11.0, "cell_factor": 0.5}, "cell_factor"),
        ({"radius_arcsec": 11.0, "window_margin": 0}, "window_margin"),
        ({"radius_arcsec": 11.0, "exclude_self": "yes"}, "exclude_self"),
    ],
)
def test_invalid_arguments_fail_with_a_message(macros, kwargs: dict, message: str) -> None:
    """Bad arguments fail at compile time, naming the macro and the argument."""
    radius = kwargs.pop("radius_arcsec")
    for macro in ("zones_pairs", "zones_nearest"):
        with pytest.raises(CompilerError, match=f"{macro}: {message}"):
            render(macros, macro, "l", "r", "id", "id", radius, **kwargs)


def _joins(plan: dict) -> Iterator[dict]:
    """Every join node of a DuckDB JSON plan."""
    if "JOIN" in plan.get("name", "") or "PRODUCT" in plan.get("name", ""):
        yield plan
    for child in plan.get("children", []):
        yield from _joins(child)


@pytest.mark.parametrize("self_match", (False, True))
def test_planner_hash_joins_on_the_cell(con, macros, self_match: bool) -> None:
    """The main join is a hash join on the single cell key; the only non-hash joins are the cross
    joins with the few-row VALUES lists of neighbour offsets (never a nested loop over catalogues)."""
    rng = np.random.default_rng(10)
    big = catalog(rng.uniform(150, 160, 50_000), rng.uniform(0, 2, 50_000))
    con.register("l", big.table())
    con.register("r", big.table())
    sql = render(macros, "zones_pairs", "l", "l" if self_match else "r", "id", "id", 3.0, exclude_self=True)
    plan = json.loads(con.sql("explain (format json) " + sql).fetchall()[0][1])
    joins = [j for node in plan for j in _joins(node)]
    conditions = []
    for join in joins:
        if join["name"].strip() == "HASH_JOIN":
            found = join["extra_info"].get("Conditions", [])
            conditions.append(found if isinstance(found, list) else [found])
    assert ["cell = cell"] in [c[:1] for c in conditions], conditions
    for join in joins:
        if join["name"].strip() != "HASH_JOIN":
            assert any(child["name"].strip() == "COLUMN_DATA_SCAN" for child in join["children"]), join[
                "name"
            ]
