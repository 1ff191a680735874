"""The brick grid (stronglens.bricks) against an independent, loop-based reference construction.

The reference below follows the survey-bricks recipe literally (one Python loop per row, as
``desiutil.brick`` does), so agreement with the vectorised module on random and edge-case points
is a real check of both the grid and the edge handling.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from stronglens import bricks


def _reference_rows() -> list[tuple[float, float, float, int]]:
    """(centre, dec1, dec2, ncol) per row, straight from the recipe."""
    rows = []
    for i in range(721):
        centre = -90.0 + 0.25 * i
        dec_lo = abs(centre) - 0.125
        n = 360.0 / 0.25 * math.cos(math.radians(dec_lo))
        ncol = 1 if i in (0, 720) else int(math.ceil(n / 2.0) * 2)
        rows.append((centre, max(centre - 0.125, -90.0), min(centre + 0.125, 90.0), ncol))
    return rows


REF_ROWS = _reference_rows()
REF_START = np.concatenate([[0], np.cumsum([r[3] for r in REF_ROWS])])


def _reference_id(ra: float, dec: float) -> int:
    ra = ra % 360.0 if ra % 360.0 < 360.0 else 0.0
    row = next(i for i, (_, d1, d2, _) in enumerate(REF_ROWS) if d1 <= dec < d2 or (dec == 90.0 and i == 720))
    ncol = REF_ROWS[row][3]
    col = next(j for j in range(ncol) if 360.0 * j / ncol <= ra < 360.0 * (j + 1) / ncol)
    return int(REF_START[row] + col + 1)


def _edge_points() -> tuple[np.ndarray, np.ndarray]:
    """Adversarial points: row and column edges and their float neighbours, RA 0/360, the poles."""
    rng = np.random.default_rng(3)
    ra_list, dec_list = [], []
    for row in [*rng.choice(721, 60, replace=False).tolist(), 0, 1, 359, 360, 361, 719, 720]:
        _, d1, d2, ncol = REF_ROWS[row]
        for d in (d1, np.nextafter(d1, 91.0), np.nextafter(d2, -91.0), d2 if d2 == 90.0 else d1):
            for j in [*rng.choice(ncol, min(ncol, 4), replace=False).tolist(), 0, ncol - 1]:
                edge = 360.0 * j / ncol
                for r in (edge, np.nextafter(edge, 361.0), np.nextafter(360.0 * (j + 1) / ncol, -1.0)):
                    ra_list.append(r)
                    dec_list.append(d)
    ra_list += [0.0, 360.0, 359.99999999999994, -1e-12, -1e-17, 720.0, 180.0, 0.0]
    dec_list += [0.0, 0.0, -0.125, 0.125, 0.0, 32.375, 90.0, -90.0]
    return np.array(ra_list), np.array(dec_list)


def test_grid_matches_the_survey_bricks_table() -> None:
    """662,174 bricks (legacysurvey.org: BRICKID in [1, 662174]) tiling the whole sphere."""
    assert bricks.N_BRICKS == 662_174 == REF_START[-1]
    ids = np.arange(1, bricks.N_BRICKS + 1)
    assert bricks.brick_area(ids).sum() == pytest.approx(4 * np.pi * (180 / np.pi) ** 2, rel=1e-12)
    ra1, ra2, d1, d2 = bricks.brick_bounds(ids)
    assert np.all(ra2 > ra1) and np.all(d2 > d1)
    # No brick is wider than 0.25 deg on the sky except the polar caps.
    width = (ra2 - ra1) * np.cos(np.radians(np.where(np.abs(d1) < np.abs(d2), d1, d2)))
    assert width[1:-1].max() <= 0.25 + 1e-12


def test_random_points_agree_with_the_reference_and_lie_inside_their_brick() -> None:
    rng = np.random.default_rng(11)
    ra = rng.uniform(-30.0, 400.0, 3000)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 3000)))
    got = bricks.brick_id(ra, dec)
    assert got.dtype == np.int32
    assert got.tolist() == [_reference_id(r, d) for r, d in zip(ra, dec, strict=True)]


def test_edge_points_agree_with_the_reference() -> None:
    ra, dec = _edge_points()
    assert bricks.brick_id(ra, dec).tolist() == [_reference_id(r, d) for r, d in zip(ra, dec, strict=True)]


def test_every_point_falls_inside_the_bounds_of_its_brick() -> None:
    rng = np.random.default_rng(5)
    e_ra, e_dec = _edge_points()
    ra = np.concatenate([rng.uniform(0.0, 360.0, 400_000), e_ra])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 400_000))), e_dec])
    ra1, ra2, d1, d2 = bricks.brick_bounds(bricks.brick_id(ra, dec))
    r = np.mod(ra, 360.0)
    r[r >= 360.0] = 0.0
    assert np.all((ra1 <= r) & (r < ra2))
    assert np.all((d1 <= dec) & ((dec < d2) | (dec == 90.0)))


def test_names_round_trip_and_are_unique() -> None:
    ids = np.arange(1, bricks.N_BRICKS + 1)
    names = bricks.brick_name(ids)
    assert np.unique(names).size == bricks.N_BRICKS
    assert np.array_equal(bricks.brick_from_name(names), ids)
    # Names encode the centre: int(RA x 10) and int(|Dec| x 10), p/m for the sign.
    ra_c, dec_c = bricks.brick_center(ids[::997])
    for name, r, d in zip(names[::997], ra_c, dec_c, strict=True):
        sign = "p" if d >= 0 else "m"
        assert name == f"{round(r * 1e4) // 1000:04d}{sign}{round(abs(d) * 1e4) // 1000:03d}"


def test_documented_example_and_the_poles() -> None:
    bid, name = bricks.brick_index([112.65, 0.0, 360.0, 123.0, 0.0], [22.25, -90.0, 90.0, 90.0, 0.0])
    assert name.tolist()[:4] == ["1126p222", "1800m900", "1800p900", "1800p900"]
    assert bid.tolist()[1:4] == [1, bricks.N_BRICKS, bricks.N_BRICKS]
    ra, dec = bricks.brick_center(bid[0])
    assert abs(ra[0] - 112.6687) < 1e-3 and dec[0] == 22.25
    # RA 0 and 360 (and -360, 720) are the same brick; the equator row is 'p000'.
    assert len(set(bricks.brick_id([0.0, 360.0, -360.0, 720.0], [0.0] * 4).tolist())) == 1
    assert name[4].endswith("p000")


def test_brick_index_names_match_brick_name() -> None:
    rng = np.random.default_rng(2)
    ra, dec = rng.uniform(0, 360, 5000), rng.uniform(-90, 90, 5000)
    bid, names = bricks.brick_index(ra, dec)
    assert np.array_equal(names, bricks.brick_name(bid))


def test_bricks_in_box_equals_brute_force_overlap() -> None:
    ids = np.arange(1, bricks.N_BRICKS + 1)
    ra1, ra2, d1, d2 = bricks.brick_bounds(ids)
    for box in [
        (0, 5, -10, -5),
        (355, 360, 30, 35),
        (150, 155, 85, 90),
        (10.1, 10.2, -0.2, 0.1),
        (0, 360, -90, -85),
    ]:
        lo_r, hi_r, lo_d, hi_d = box
        brute = ids[(ra2 > lo_r) & (ra1 < hi_r) & (d2 > lo_d) & (d1 < hi_d)]
        assert np.array_equal(bricks.bricks_in_box(*box), brute), box


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bricks.brick_id([1.0], [90.5]), "dec outside"),
        (lambda: bricks.brick_id([np.nan], [0.0]), "NaN"),
        (lambda: bricks.brick_id([1.0, 2.0], [0.0]), "shape"),
        (lambda: bricks.brick_bounds([0]), "brickid outside"),
        (lambda: bricks.brick_bounds([bricks.N_BRICKS + 1]), "brickid outside"),
        (lambda: bricks.brick_from_name(["1126x222"]), "malformed"),
        (lambda: bricks.brick_from_name(["1126p22"]), "malformed"),
        (lambda: bricks.brick_from_name(["1127p222"]), "name no brick"),
        (lambda: bricks.bricks_in_box(5, 5, 0, 1), "invalid box"),
    ],
)
def test_errors_say_what_is_wrong(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
