"""The synthetic DR10-south sky (stronglens.synth): layout, determinism, keys and realism.

References are independent of the generator: astropy for Galactic coordinates, a KD-tree for
crossmatches, the brick module (tested on its own) and a re-derivation of piece areas for the
expected counts, and published DR10 figures (DOMAIN.md) for the type mix and the lens matches.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy.spatial import cKDTree

from stronglens import bricks, synth
from stronglens.schema import MASKBITS, SWEEP_SCHEMA, sweep_filename
from stronglens.synth import masks, writer

Sky = tuple[synth.SynthReport, pd.DataFrame]
CANDIDATES = pd.read_csv(synth.DEFAULT_CANDIDATES_CSV)
POOL_MASK = sum(1 << MASKBITS[b] for b in ("BRIGHT", "MEDIUM", "GALAXY", "CLUSTER"))
#: DR10 TYPE shares (DOMAIN.md: PSF 1.35e9, REX 1.12e9, EXP 2.25e8, DEV 8.4e7, SER 4.9e7, DUP 2.9e5).
DR10_MIX = {
    "PSF": 1.35 / 2.83,
    "REX": 1.12 / 2.83,
    "EXP": 0.225 / 2.83,
    "DEV": 0.084 / 2.83,
    "SER": 0.049 / 2.83,
}
#: Eight tiles spread over both Galactic caps, two of them adjacent (a shared edge at RA 155).
SPREAD_TILES = [
    "sweep-150p000-155p005",
    "sweep-155p000-160p005",
    "sweep-020m030-025m025",
    "sweep-050m055-055m050",
    "sweep-200p025-205p030",
    "sweep-340p010-345p015",
    "sweep-230m010-235m005",
    "sweep-000m005-005p000",
]


def _read(paths: list[str] | list[Path], columns: list[str] | None = None) -> pd.DataFrame:
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths]).to_pandas()


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=1)


def _chord(arcsec: float) -> float:
    return 2.0 * math.sin(math.radians(arcsec / 3600.0) / 2.0)


def _mag(df: pd.DataFrame, band: str) -> np.ndarray:
    flux = df[f"flux_{band}"] / df[f"mw_transmission_{band}"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 22.5 - 2.5 * np.log10(flux), np.nan)


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def full_sky(tmp_path_factory: pytest.TempPathFactory) -> Sky:
    """The whole footprint at a low density, with every lens counterpart."""
    out = tmp_path_factory.mktemp("full")
    report = synth.generate_sky(str(out), density=3.0, seed=42, progress=False)
    cols = "release, brickid, brickname, objid, type, ra, dec, flux_g, flux_r, flux_z"
    cols += ", mw_transmission_g, mw_transmission_r, mw_transmission_z"
    con = duckdb.connect()
    frame = con.sql(
        f"SELECT {cols}, parse_filename(filename) AS file FROM read_parquet('{out}/*.parquet', filename=true)"
    ).df()
    con.close()
    return report, frame


@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> Sky:
    """Eight tiles at the default density and magnitude limit."""
    report = synth.generate_sky(str(tmp_path_factory.mktemp("spread")), tiles=SPREAD_TILES, progress=False)
    frame = _read(report.files)
    frame["mz"] = _mag(frame, "z")
    return report, frame


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """One tile at full DR10 depth (mag_limit 24.5)."""
    report = synth.generate_sky(
        str(tmp_path_factory.mktemp("deep")),
        density=6000,
        mag_limit=24.5,
        tiles=["sweep-020m030-025m025"],
        candidates_csv=None,
        progress=False,
    )
    return _read(report.files, ["type", "flux_z", "mw_transmission_z"])


# ---------------------------------------------------------------------------------------------------
# Coordinates, footprint, tiles


def test_galactic_rotation_matches_astropy() -> None:
    rng = np.random.default_rng(1)
    ra = np.concatenate([rng.uniform(0, 360, 20_000), [0.0, 360.0, 192.85948, 266.40499, 0.0, 180.0]])
    dec = np.concatenate(
        [np.degrees(np.arcsin(rng.uniform(-1, 1, 20_000))), [0.0, 0.0, 27.12825, -28.93617, 90.0, -90.0]]
    )
    lon, lat = synth.icrs_to_galactic(ra, dec)
    ref = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").galactic
    assert np.abs(lat - ref.b.deg).max() < 3e-5  # the ~20 mas FK5 frame bias, no more
    dlon = (lon - ref.l.deg + 180.0) % 360.0 - 180.0
    off_pole = np.abs(ref.b.deg) < 89.9
    assert np.abs(dlon * np.cos(np.radians(ref.b.deg)))[off_pole].max() < 3e-5
    assert lat[-4] == pytest.approx(90.0, abs=1e-5)  # the north Galactic pole


def test_footprint_is_dr10_south_like() -> None:
    fp = synth.Footprint()
    area = synth.footprint_area()
    assert 18_000 < area < 21_000
    # The brick-based area agrees with the point rule integrated on a fine HEALPix grid.
    import healpy as hp

    nside = 256
    ra, dec = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    direct = fp.contains(ra, dec).sum() * hp.nside2pixarea(nside, degrees=True)
    assert area == pytest.approx(direct, rel=0.01)
    # North of Dec 32.375 and the Galactic plane are outside; the candidates' south is inside.
    assert not fp.contains(np.array([150.0, 266.4]), np.array([32.5, -28.9])).any()
    south = CANDIDATES[CANDIDATES.dec_deg < 32.375]
    c_ra, c_dec = bricks.brick_center(bricks.brick_id(south.ra_deg, south.dec_deg))
    assert fp.contains(c_ra, c_dec).all()
    assert (CANDIDATES.dec_deg >= 32.375).sum() == 343


def test_tile_selection_accepts_names_and_boxes() -> None:
    tiles = synth.select_tiles(["sweep-150p000-155p005.parquet", "sweep-155p000-160p005", "150,160,0,5"])
    assert [t.name for t in tiles] == ["sweep-150p000-155p005.parquet", "sweep-155p000-160p005.parquet"]
    wrap = {t.name for t in synth.select_tiles(["355,5,0,5"])}
    assert wrap == {"sweep-355p000-360p005.parquet", "sweep-000p000-005p005.parquet"}
    box = synth.select_tiles(["0,360,30,35"])
    assert box and all(t.dec_min == 30 for t in box)
    assert synth.parse_tile("sweep-000m010-005m005").name == sweep_filename(0, -10, 5, -5)
    for bad, err in [
        (["sweep-001m010-006m005"], "5-deg grid"),
        (["sweep-000m010-010m005"], "5-deg grid"),
        (["tile-000m010-005m005"], "not a sweep name"),
        (["sweep-150p040-155p045"], "does not overlap"),
        (["10,10,0,5"], "RAMIN == RAMAX"),
        (["0,10,5,0"], "DECMIN < DECMAX"),
    ]:
        with pytest.raises(ValueError, match=err):
            synth.select_tiles(bad)
    with pytest.raises(TypeError, match="bare string"):
        synth.select_tiles("150,160,0,5")  # type: ignore[arg-type]


def test_only_footprint_tiles_are_written_with_real_names(full_sky: Sky) -> None:
    report, frame = full_sky
    names = sorted(Path(f).name for f in report.files)
    assert names == sorted(t.name for t in synth.footprint_tiles())
    assert all(re.fullmatch(r"sweep-\d{3}[pm]\d{3}-\d{3}[pm]\d{3}\.parquet", n) for n in names)
    assert not list(Path(report.files[0]).parent.glob(".*tmp"))
    assert report.footprint_area_deg2 == pytest.approx(synth.footprint_area(), rel=1e-9)
    # Every row lies inside the tile its file is named after, and inside its own brick.
    tiles = frame["file"].map({t.name: t for t in synth.footprint_tiles()})
    ra_min = np.array([t.ra_min for t in tiles])
    dec_min = np.array([t.dec_min for t in tiles])
    assert np.all(
        (frame.ra >= ra_min) & (frame.ra < ra_min + 5) & (frame.dec >= dec_min) & (frame.dec < dec_min + 5)
    )
    bid, name = bricks.brick_index(frame.ra.to_numpy(), frame.dec.to_numpy())
    assert np.array_equal(bid, frame.brickid.to_numpy()) and np.array_equal(name, frame.brickname.to_numpy())


def test_schema_is_exactly_the_sweep_schema(spread: Sky) -> None:
    report, _ = spread
    for f in report.files:
        assert pq.read_schema(f).remove_metadata() == SWEEP_SCHEMA
        meta = pq.read_metadata(f)
        assert meta.row_group(0).column(0).compression == "ZSTD"


def test_row_groups_have_the_requested_size(tmp_path: Path) -> None:
    report = synth.generate_sky(
        str(tmp_path), density=2000, tiles=["sweep-150p000-155p005"], row_group_rows=7000, progress=False
    )
    meta = pq.read_metadata(report.files[0])
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == report.total_rows > 40_000
    assert all(s == 7000 for s in sizes[:-1]) and 0 < sizes[-1] <= 7000


# ---------------------------------------------------------------------------------------------------
# Determinism and keys


def test_same_arguments_give_byte_identical_files_whatever_else_is_requested(tmp_path: Path) -> None:
    pair = ["sweep-150p000-155p005", "sweep-155p000-160p005"]
    a = synth.generate_sky(str(tmp_path / "a"), density=800, tiles=pair, progress=False)
    b = synth.generate_sky(str(tmp_path / "b"), density=800, tiles=pair, progress=False, workers=1)
    alone = synth.generate_sky(str(tmp_path / "c"), density=800, tiles=pair[1:], progress=False)
    assert [_sha(f) for f in a.files] == [_sha(f) for f in b.files]
    assert _sha(alone.files[0]) == _sha(a.files[1])
    other = synth.generate_sky(str(tmp_path / "d"), density=800, tiles=pair, seed=43, progress=False)
    assert all(_sha(x) != _sha(y) for x, y in zip(a.files, other.files, strict=True))
    ra_a = pq.read_table(a.files[0], columns=["ra"]).column(0).to_numpy()
    ra_o = pq.read_table(other.files[0], columns=["ra"]).column(0).to_numpy()
    assert not np.isin(ra_a, ra_o).any()


def test_keys_are_unique_and_objids_dense_per_brick_over_the_whole_sky(full_sky: Sky) -> None:
    _, frame = full_sky
    assert not frame.duplicated(["release", "brickid", "objid"]).any()
    per_brick = frame.groupby("brickid").objid.agg(["min", "max", "count", "nunique"])
    assert (per_brick["min"] == 0).all()
    assert (per_brick["max"] == per_brick["count"] - 1).all() and (
        per_brick["nunique"] == per_brick["count"]
    ).all()
    # A brick has one release, even when it is split over two files.
    assert (frame.groupby("brickid").release.nunique() == 1).all()
    assert set(frame.release.unique()) <= {10000, 10002}
    assert 0.005 < (frame.release == 10002).mean() < 0.08
    assert (frame.groupby("brickid").file.nunique() > 1).any()  # bricks do straddle tiles


def test_counts_per_tile_follow_area_times_density(full_sky: Sky) -> None:
    """Chi-square of tile counts against density x footprint area (areas re-derived here)."""
    report, frame = full_sky
    density = 3.0
    # Remove the lens counterparts (nearest rows to the candidates; random pairs are negligible here).
    tree = cKDTree(_unit(frame.ra.to_numpy(), frame.dec.to_numpy()))
    dist, idx = tree.query(_unit(CANDIDATES.ra_deg.to_numpy(), CANDIDATES.dec_deg.to_numpy()))
    cp = np.unique(idx[dist < _chord(3.5)])
    base = frame.drop(index=frame.index[cp])
    # Expected: footprint bricks cut by the tile grid.
    ids = synth.footprint_bricks()
    ra1, ra2, d1, d2 = bricks.brick_bounds(ids)
    expected: dict[str, float] = {}
    for k_ra in (0, 1):
        for k_dec in (0, 1):
            t_ra = np.floor(ra1 / 5) + k_ra
            t_dec = np.floor(d1 / 5) + k_dec
            lo_r, hi_r = np.maximum(ra1, 5 * t_ra), np.minimum(ra2, 5 * t_ra + 5)
            lo_d, hi_d = np.maximum(d1, 5 * t_dec), np.minimum(d2, 5 * t_dec + 5)
            ok = (hi_r > lo_r) & (hi_d > lo_d)
            area = (hi_r - lo_r) * np.degrees(np.sin(np.radians(hi_d)) - np.sin(np.radians(lo_d)))
            for r, d, a in zip(t_ra[ok], t_dec[ok], area[ok], strict=True):
                key = sweep_filename(int(5 * r), int(5 * d), int(5 * r + 5), int(5 * d + 5))
                expected[key] = expected.get(key, 0.0) + density * a
    observed = base.groupby("file").size().reindex(list(expected), fill_value=0)
    exp = np.array(list(expected.values()))
    assert sum(exp) / density == pytest.approx(report.footprint_area_deg2, rel=1e-9)
    big = exp > 5
    chi2 = (((observed.to_numpy() - exp) ** 2) / exp)[big].sum()
    k = big.sum()
    assert abs(chi2 - k) < 5 * math.sqrt(2 * k), (chi2, k)
    assert abs(len(base) - exp.sum()) < 4 * math.sqrt(exp.sum())


# ---------------------------------------------------------------------------------------------------
# Lens counterparts


def test_lens_candidates_get_realistic_counterparts(full_sky: Sky) -> None:
    report, frame = full_sky
    tree = cKDTree(_unit(frame.ra.to_numpy(), frame.dec.to_numpy()))
    dist, idx = tree.query(_unit(CANDIDATES.ra_deg.to_numpy(), CANDIDATES.dec_deg.to_numpy()))
    sep = np.degrees(2 * np.arcsin(dist / 2)) * 3600
    within = sep < 1.0
    # DOMAIN.md: a real run matched 4,788 of 5,104 (93.8%); here the 343 northern candidates and ~1%
    # displaced counterparts stay unmatched, the rest match.
    assert 0.92 <= within.mean() <= 0.96
    assert within.sum() == report.counterparts_within_1arcsec
    assert not within[CANDIDATES.dec_deg.to_numpy() >= 32.375].any()
    south = CANDIDATES.dec_deg.to_numpy() < 32.375
    displaced = south & (sep > 1.4) & (sep < 3.1)
    assert 0.004 < displaced.sum() / south.sum() < 0.02
    assert np.median(sep[within]) == pytest.approx(0.06, abs=0.02)
    hosts = frame.iloc[idx[within]]
    types = hosts.type.value_counts(normalize=True)
    # published DR9/DR10 candidates' hosts (DOMAIN.md): SER 54-61%, DEV 15-24%, REX 16-20%, EXP 4-6%
    assert 0.5 < types.get("SER", 0) < 0.65 and 0.14 < types.get("DEV", 0) < 0.25
    assert 0.13 < types.get("REX", 0) < 0.23 and types.get("EXP", 0) < 0.08 and types.get("PSF", 0) < 0.01
    mz = _mag(hosts, "z")
    assert np.mean((mz > 15.3) & (mz < 20.2)) > 0.97
    gr = _mag(hosts, "g") - _mag(hosts, "r")
    assert np.nanmedian(gr) > 1.3


# ---------------------------------------------------------------------------------------------------
# Populations at full depth and at the defaults


def test_type_mix_at_full_depth_matches_dr10(deep: pd.DataFrame) -> None:
    mix = deep.type.value_counts(normalize=True)
    for t, share in DR10_MIX.items():
        assert mix[t] == pytest.approx(share, abs=0.01 if share > 0.05 else 0.004), t
    assert mix.get("DUP", 0) < 0.001


def test_magnitude_counts_have_realistic_slopes(deep: pd.DataFrame) -> None:
    mz = _mag(deep, "z")
    edges = np.arange(17.0, 22.01, 0.5)

    def slope(sel: np.ndarray) -> float:
        counts, _ = np.histogram(mz[sel], edges)
        return float(np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(counts), 1)[0])

    galaxies = deep.type.isin(["REX", "EXP", "DEV", "SER"]).to_numpy()
    assert 0.3 <= slope(galaxies) <= 0.45
    edges = np.arange(15.0, 19.01, 0.5)
    assert slope(deep.type.eq("PSF").to_numpy()) < 0.2  # stars dominate bright PSF counts: flatter


def test_bright_objects_lean_to_early_types_and_stars(spread: Sky, deep: pd.DataFrame) -> None:
    _, df = spread
    bright, full = df[df.mz < 20].type.value_counts(), deep.type.value_counts()
    assert bright["PSF"] / bright.sum() > full["PSF"] / full.sum()
    galaxies = ["REX", "EXP", "DEV", "SER"]
    bright, full = bright[galaxies] / bright[galaxies].sum(), full[galaxies] / full[galaxies].sum()
    for t in ("DEV", "SER", "EXP"):
        assert bright[t] > 1.3 * full[t], t
    assert bright["REX"] < full["REX"]


def test_pool_after_the_training_cuts_holds_about_two_million(spread: Sky) -> None:
    report, df = spread
    pool = (
        df.type.isin(["SER", "DEV", "REX"])
        & (df.mz < 20)
        & (df[["nobs_g", "nobs_r", "nobs_z"]].min(axis=1) >= 3)
        & ((df.maskbits & POOL_MASK) == 0)
    )
    estimate = pool.sum() * synth.footprint_area() / report.footprint_area_deg2
    assert 1.5e6 <= estimate <= 2.5e6, estimate


def test_colours_by_type(spread: Sky) -> None:
    _, df = spread
    df = df[df.mz < 20]
    gr = _mag(df, "g") - _mag(df, "r")
    rz = _mag(df, "r") - _mag(df, "z")
    early = df.type.isin(["DEV", "SER"]).to_numpy()
    assert 1.2 < np.nanmedian(gr[early]) < 1.8 and 0.6 < np.nanmedian(rz[early]) < 1.0
    assert np.nanmedian(gr[df.type.isin(["EXP", "REX"]).to_numpy()]) < np.nanmedian(gr[early]) - 0.2
    pool_like = df.type.isin(["DEV", "SER", "REX"]).to_numpy()
    assert 0.05 <= np.nanmean(gr[pool_like] <= 0.4) <= 0.10


def test_wise_agn_tail(spread: Sky) -> None:
    _, df = spread
    gal = df[df.type.isin(["DEV", "SER", "REX"]) & (df.mz < 20)]
    good = (gal.flux_w1 * np.sqrt(gal.flux_ivar_w1) > 5) & (gal.flux_w2 * np.sqrt(gal.flux_ivar_w2) > 3)
    gal = gal[good]
    w1_w2_vega = -2.5 * np.log10(gal.flux_w1 / gal.flux_w2) - 2.699 + 3.339
    assert 0.015 < (w1_w2_vega >= 0.8).mean() < 0.06
    stars = df[(df.type == "PSF") & (df.mz < 18)]
    stars_w12 = -2.5 * np.log10(stars.flux_w1 / stars.flux_w2) + 0.64
    assert abs(np.median(stars_w12)) < 0.1  # stars sit at W1-W2 ~ 0 (Vega)


def test_shapes_follow_tractor_conventions(spread: Sky) -> None:
    _, df = spread
    e = np.hypot(df.shape_e1, df.shape_e2)
    assert e.max() <= 0.75
    psf, rex = df[df.type == "PSF"], df[df.type == "REX"]
    assert (psf.shape_r == 0).all() and (psf.sersic == 0).all() and (psf.shape_r_ivar == 0).all()
    assert (rex.shape_e1 == 0).all() and (rex.shape_e2 == 0).all() and (rex.sersic == 1).all()
    assert 0.3 <= rex.shape_r.median() <= 0.6
    assert (df[df.type == "DEV"].sersic == 4).all() and (df[df.type == "EXP"].sersic == 1).all()
    ser = df[df.type == "SER"].sersic
    assert ser.between(0.5, 6).all() and ser.between(1, 4).mean() > 0.6
    assert (df[df.type == "SER"].sersic_ivar > 0).all() and (df[df.type != "SER"].sersic_ivar == 0).all()
    big = df[df.type.isin(["EXP", "DEV", "SER"]) & (df.mz < 18)]
    assert 1.0 <= big.shape_r.median() <= 5.0
    disks = df[df.type == "EXP"]
    assert (np.hypot(disks.shape_e1, disks.shape_e2) > 0.6).mean() > 0.05  # edge-on tail
    dup = df[df.type == "DUP"]
    assert len(dup) and (dup[[f"flux_{b}" for b in "grz"]] == 0).all().all()


def test_observing_conditions_are_realistic_and_smooth(spread: Sky) -> None:
    _, df = spread
    # DES-like fields see better (z ~1.0") than DECaLS-like ones (~1.2"): see test_regions
    assert df.psfsize_z.between(0.65, 1.9).all() and df.psfsize_g.between(0.75, 2.2).all()
    assert 0.85 < df.psfsize_z.median() < 1.5 and (df.psfsize_g > df.psfsize_z).mean() > 0.95
    m5 = {b: -2.5 * (np.log10(5 / np.sqrt(df[f"psfdepth_{b}"])) - 9) for b in "grz"}
    assert all(m5[b].between(21.5, 25.5).all() for b in "grz")
    assert 23.5 < m5["g"].median() < 24.8 and 22.4 < m5["z"].median() < 23.7
    assert (df.galdepth_z < df.psfdepth_z).all()
    nobs = df[["nobs_g", "nobs_r", "nobs_z"]]
    assert (nobs >= 1).all().all() and nobs.max().max() <= 15
    assert 0.75 < (nobs.min(axis=1) >= 3).mean() < 0.97 and (df.nobs_z <= 2).mean() > 0.005
    # Deeper where there are more passes.
    assert np.corrcoef(np.log(df.nobs_z), np.log(df.psfdepth_z))[0, 1] > 0.5
    no_i = df.nobs_i == 0
    assert 0.1 < no_i.mean() < 0.5
    assert (df.loc[no_i, ["psfdepth_i", "flux_ivar_i", "psfsize_i", "flux_i"]] == 0).all().all()
    # Transmission follows E(B-V) with the DR10 coefficients; dust rises toward the plane.
    for band, r in (("g", 3.214), ("r", 2.165), ("i", 1.592), ("z", 1.211), ("w1", 0.184), ("w2", 0.113)):
        np.testing.assert_allclose(df[f"mw_transmission_{band}"], 10 ** (-0.4 * r * df.ebv), rtol=1e-5)
    assert 0.005 < df.ebv.median() < 0.1
    # flux_ivar is the depth (sky noise) reduced by the source's own noise and size.
    psf = df[(df.type == "PSF") & (df.flux_z.abs() < 1)]
    np.testing.assert_allclose(psf.flux_ivar_z / psf.psfdepth_z, 1.0, atol=0.02)
    # Smooth: neighbours within 2' share nearly the same seeing, across the tile edge at RA 155 too.
    edge = df[(df.dec > 0) & (df.dec < 5) & (df.ra > 154.5) & (df.ra < 155.5)]
    xyz = _unit(edge.ra.to_numpy(), edge.dec.to_numpy())
    pairs = cKDTree(xyz).query_pairs(_chord(120.0), output_type="ndarray")
    assert len(pairs) > 200
    ra_e = edge.ra.to_numpy()
    assert ((ra_e[pairs[:, 0]] < 155) != (ra_e[pairs[:, 1]] < 155)).sum() > 10
    psf_z = edge.psfsize_z.to_numpy()
    assert np.abs(psf_z[pairs[:, 0]] - psf_z[pairs[:, 1]]).max() < 0.01
    ebv = edge.ebv.to_numpy()
    assert np.abs(ebv[pairs[:, 0]] - ebv[pairs[:, 1]]).max() < 0.005


def test_masks_and_flags(spread: Sky) -> None:
    _, df = spread
    bits = df.maskbits.to_numpy()
    assert not (bits & (1 << MASKBITS["NPRIMARY"])).any()
    assert 0.02 < (bits != 0).mean() < 0.08
    assert 0.01 < ((bits & POOL_MASK) != 0).mean() < 0.06
    for name in ("BRIGHT", "MEDIUM", "GALAXY", "SATUR_Z", "ALLMASK_G", "WISEM1"):
        assert (bits & (1 << MASKBITS[name])).any(), name
    # BRIGHT circles lie inside the twice-larger MEDIUM circles of the same stars.
    bright = (bits & (1 << MASKBITS["BRIGHT"])) != 0
    assert ((bits[bright] & (1 << MASKBITS["MEDIUM"])) != 0).all()
    # ALLMASK_X maskbits mirror the allmask_x columns.
    for band in "grz":
        np.testing.assert_array_equal(
            (bits & (1 << MASKBITS[f"ALLMASK_{band.upper()}"])) != 0, df[f"allmask_{band}"] != 0
        )
    assert (df.anymask_z != 0).mean() < 0.06 and (df.allmask_z != 0).sum() <= (df.anymask_z != 0).sum()
    assert df.fracflux_z.median() < 0.02 and df.fracflux_z.quantile(0.95) > 0.05
    assert df.fracin_z.median() > 0.99 and (df.fracmasked_z == 0).mean() > 0.85
    assert (df.fitbits == 0).mean() > 0.5
    gaia = df.ref_cat == "G2"
    assert set(df.ref_cat.unique()) == {"", "G2"}
    assert df.loc[gaia, "type"].isin(["PSF", "DUP"]).all() and (df.loc[gaia, "ref_id"] > 0).all()
    assert (df.loc[~gaia, "ref_id"] == 0).all()


def test_close_galaxy_pairs_exist(spread: Sky) -> None:
    _, df = spread
    bright = df[df.type.isin(["REX", "EXP", "DEV", "SER"]) & (df.mz < 20)]
    tree = cKDTree(_unit(bright.ra.to_numpy(), bright.dec.to_numpy()))
    pairs = tree.query_pairs(_chord(3.2), output_type="ndarray")
    sep = (
        np.degrees(
            2
            * np.arcsin(
                np.linalg.norm(
                    _unit(bright.ra.to_numpy()[pairs[:, 0]], bright.dec.to_numpy()[pairs[:, 0]])
                    - _unit(bright.ra.to_numpy()[pairs[:, 1]], bright.dec.to_numpy()[pairs[:, 1]]),
                    axis=1,
                )
                / 2
            )
        )
        * 3600
    )
    in_pair = np.unique(pairs[sep > 0.9].ravel())
    assert 0.01 <= in_pair.size / len(bright) <= 0.04
    # Pair members are blended: their fracflux is high.
    assert bright.fracflux_z.to_numpy()[in_pair].mean() > 0.2


def test_failed_tile_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> pa.Table:
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_generate_chunk", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        synth.generate_sky(str(tmp_path), tiles=["sweep-150p000-155p005"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_arguments_are_validated(tmp_path: Path) -> None:
    for kwargs, err in [
        ({"density": 0}, "density"),
        ({"mag_limit": 12}, "mag_limit"),
        ({"seed": -1}, "seed"),
        ({"row_group_rows": 0}, "row_group_rows"),
        ({"candidates_csv": str(tmp_path / "nope.csv")}, "not found"),
    ]:
        with pytest.raises((ValueError, FileNotFoundError), match=err):
            synth.generate_sky(str(tmp_path), tiles=["sweep-150p000-155p005"], progress=False, **kwargs)


def test_mask_circles_match_a_brute_force_search() -> None:
    """The cell-indexed circle search equals an all-pairs great-circle test (edge cases aside)."""
    rng = np.random.default_rng(9)
    for dec_lo, n_obj in ((-2.0, 30), (60.0, 6000)):
        dec_hi = dec_lo + 0.25 * 20
        c_ra, c_dec = rng.uniform(99.0, 106.0, 2000), rng.uniform(dec_lo - 0.1, dec_hi + 0.1, 2000)
        radius = 10 ** rng.uniform(-3.5, -0.8, 2000)  # 1" to 10'
        circ = masks._Circles(c_ra, c_dec, radius, (1 << rng.integers(0, 17, 2000)).astype(np.int32))
        ra, dec = rng.uniform(100.0, 105.0, n_obj), rng.uniform(dec_lo, dec_hi, n_obj)
        got = masks._apply_circles(circ, ra, dec, dec_lo, dec_hi)
        sep = np.degrees(
            np.arccos(np.clip(_unit(ra, dec) @ _unit(c_ra, c_dec).T, -1.0, 1.0))
        )  # (n_obj, n_circles)
        inside = sep < radius
        ambiguous = (np.abs(sep - radius) < 1e-3 * radius).any(axis=1)
        want = np.array([np.bitwise_or.reduce(circ.bits[row], initial=0) for row in inside])
        assert np.array_equal(got[~ambiguous], want[~ambiguous])
        assert (got != 0).any()


def test_masks_are_seamless_across_tile_edges() -> None:
    """Every mask circle crossing a shared tile edge is applied by the tiles on both sides."""
    model = synth.SkyModel()

    def crossing_ra_edge(c: masks._Circles, edge: float, dec0: float) -> np.ndarray:
        d_ra = (c.ra - edge + 180.0) % 360.0 - 180.0
        reach = c.radius / np.cos(np.radians(c.dec))
        return (np.abs(d_ra) < reach) & (c.dec + c.radius > dec0) & (c.dec - c.radius < dec0 + 5)

    def crossing_dec_edge(c: masks._Circles, edge: float, ra0: float) -> np.ndarray:
        reach = c.radius / np.cos(np.radians(c.dec))
        return (np.abs(c.dec - edge) < c.radius) & (c.ra + reach > ra0) & (c.ra - reach < ra0 + 5)

    cases = [
        (synth.Tile(idec=0, ira=30), synth.Tile(idec=0, ira=31), lambda c: crossing_ra_edge(c, 155.0, 0.0)),
        (synth.Tile(idec=0, ira=71), synth.Tile(idec=0, ira=0), lambda c: crossing_ra_edge(c, 0.0, 0.0)),
        (synth.Tile(idec=-6, ira=4), synth.Tile(idec=-5, ira=4), lambda c: crossing_dec_edge(c, -25.0, 20.0)),
    ]
    for a, b, crossing in cases:
        seen = []
        for t in (a, b):
            c = masks._neighbourhood_circles(42, model, t)
            keep = crossing(c)
            seen.append(
                {
                    (round(r % 360.0, 9), round(d, 9), round(x, 12), int(k))
                    for r, d, x, k in zip(c.ra[keep], c.dec[keep], c.radius[keep], c.bits[keep], strict=True)
                }
            )
        assert len(seen[0]) >= 3 and seen[0] == seen[1], (a, b)
