"""Training-set fidelity on real dbt builds of the test sky, each against an independent reference:
the N2 presets re-evaluated in pandas from dbt_project.yml, the sampling rules (N2 never above its
quota, N1 top-ups from neighbouring bins only), every positive type among the negatives, candidate
merging and counterpart matching with DESI- name keys (astropy), build_runs inside its own snapshot,
and the quality gates that must refuse the seed's N2 thresholds."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy import units as u
from astropy.coordinates import SkyCoord, match_coordinates_sky, search_around_sky

from stronglens import quality
from tests.pipeline import ROOT, build_or_fail, lake, run_build

VARS = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
THRESHOLDS = quality.load_thresholds()
CATEGORIES = [
    "ring_proxy",
    "spiral_proxy",
    "edge_on_proxy",
    "merger_proxy",
    "blue_clumpy_proxy",
    "agn_host_proxy",
    "large_galaxy_proxy",
]
#: The variant build: the seed's N2 thresholds, a z-magnitude stratum dimension and an extra list.
MAG_STRATIFY = ["type", "nobs_z", "psfsize_z", "mag_z_dered"]


def _table(home: Path, sql: str, snapshot: int | None = None) -> pd.DataFrame:
    with lake(home, snapshot) as con:
        return con.execute(sql).df()


def _flags(pool: pd.DataFrame, preset: dict[str, Any]) -> pd.DataFrame:
    """The preset's N2 flags in pandas, read straight from the cut dictionaries."""
    out = pd.DataFrame(index=pool.index)
    for category in CATEGORIES:
        if category not in preset["priority"]:
            out[category] = False
            continue
        keep = pd.Series(True, index=pool.index)
        for key, value in preset[category].items():
            if key == "types":
                keep &= pool.type.isin(value)
            elif key == "ser_min_sersic":
                keep &= (pool.type != "SER") | (pool.sersic >= value)
            elif key == "ser_max_sersic":
                keep &= (pool.type != "SER") | (pool.sersic <= value)
            elif key in ("radius_arcsec", "min_flux_ratio"):
                continue
            elif key.startswith("min_"):
                keep &= pool[key[4:]] >= value
            elif key.startswith("max_"):
                keep &= pool[key[4:]] <= value
        if category == "merger_proxy":
            keep &= pool.merger_neighbour_id.notna()
        out[category] = keep.fillna(False).astype(bool)
    return out


def _check_preset(home: Path, preset_name: str) -> pd.DataFrame:
    preset = VARS["n2_presets"][preset_name]
    pool = _table(home, "select * from int_negative_pool order by galaxy_id")
    want = _flags(pool, preset)
    for category in CATEGORIES:
        np.testing.assert_array_equal(pool[category].values, want[category].values, err_msg=category)
    first = want[preset["priority"]].idxmax(axis=1).where(want[preset["priority"]].any(axis=1))
    assert pool.n2_category.fillna("N1").tolist() == first.fillna("N1").tolist()
    return pool


@pytest.fixture(scope="module")
def extra_list(tmp_path_factory: pytest.TempPathFactory, home: Path, sweeps_glob: str) -> dict[str, Any]:
    """A published-style list (Name, RA, DEC, grading): three lenscat lenses re-listed 1.5-4" away,
    a new lens whose catalogue position is 10" off but whose DESI- name is right, and a grade-C one."""
    pos = _table(
        home,
        "select candidate_id, ra, dec from positives where is_matched and n_listings = 1 "
        "and name_offset_arcsec < 0.5 order by candidate_id limit 3",
    )
    rows = []
    for (cid, ra, dec), offset in zip(pos.itertuples(index=False), (1.5, 3.0, 4.0), strict=True):
        rows.append(
            {
                "Name": f"J-relisted-{offset}",
                "RA": ra + offset / 3600 / np.cos(np.radians(dec)),
                "DEC": dec,
                "grading": "probable",
                "_id": cid,
            }
        )
    # a DR10 galaxy far from every candidate: the new lens
    galaxies = _table(home, "select galaxy_id, ra, dec from int_negative_pool order by sample_hash limit 200")
    cands = _table(home, "select ra, dec from int_lens_candidates_unioned")
    gal_c = SkyCoord(galaxies.ra.values * u.deg, galaxies.dec.values * u.deg)
    _, sep, _ = match_coordinates_sky(gal_c, SkyCoord(cands.ra.values * u.deg, cands.dec.values * u.deg))
    pick = int(np.flatnonzero(sep.arcsec > 120)[0])
    new_id, new_ra, new_dec = (
        int(galaxies.galaxy_id.iloc[pick]),
        galaxies.ra.iloc[pick],
        galaxies.dec.iloc[pick],
    )
    name = f"NEW-1 | DESI-{new_ra:08.4f}{new_dec:+08.4f}"
    rows.append({"Name": name, "RA": new_ra, "DEC": new_dec + 10 / 3600, "grading": "confident", "_id": None})
    rows.append({"Name": "MAYBE-1", "RA": new_ra + 0.5, "DEC": new_dec, "grading": "possible", "_id": None})
    path = tmp_path_factory.mktemp("lists") / "Paper_X.csv"
    frame = pd.DataFrame(rows)
    frame.drop(columns="_id").to_csv(path, index=False)
    return {
        "path": str(path),
        "relisted": list(frame._id[:3]),
        "new_galaxy": new_id,
        "name": name,
    }


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory, sweeps_glob: str, extra_list: dict[str, Any]) -> Path:
    home = tmp_path_factory.mktemp("variant")
    variant_vars = {
        "n2_definitions": "seed-2026-02",
        "stratify_by": MAG_STRATIFY,
        "extra_candidates": [extra_list["path"]],
    }
    # the catalogue marts and their parents (every table a quality frame reads), no data tests
    marts = ("+positives", "+negatives", "+sampling_strata", "+n2_summary", "+build_runs")
    build_or_fail(
        home,
        sweeps_glob,
        "--select",
        *marts,
        "--exclude",
        "test_type:data",
        "--vars",
        json.dumps(variant_vars),
    )
    return home


# --- N2 definitions ------------------------------------------------------------------------------------


def test_default_preset_flags_equal_reference_and_hit_targets(home: Path) -> None:
    pool = _check_preset(home, VARS["n2_definitions"])
    assert set(VARS["n2_presets"][VARS["n2_definitions"]]["priority"]) == set(CATEGORIES)  # seven
    lo, hi = THRESHOLDS["n2_category_pool_prevalence_band"]
    prevalence = pool[CATEGORIES].mean()
    assert ((prevalence >= lo) & (prevalence <= hi)).all(), prevalence
    union_lo, union_hi = THRESHOLDS["n2_pool_prevalence_band"]
    assert union_lo <= pool.is_n2.mean() <= union_hi
    # ellipticals are not confusers by being ellipticals
    assert pool[pool.type == "DEV"].is_n2.mean() < 0.3


def test_seed_preset_is_reproduced_exactly(variant: Path) -> None:
    pool = _check_preset(variant, "seed-2026-02")
    assert not pool.spiral_proxy.any()  # the seed had six categories


def test_seed_preset_is_refused_by_the_gate(variant: Path) -> None:
    old = os.environ.get("STRONGLENS_HOME")
    os.environ["STRONGLENS_HOME"] = str(variant)
    try:
        report = quality.run_check()
    finally:
        if old is None:
            os.environ.pop("STRONGLENS_HOME")
        else:
            os.environ["STRONGLENS_HOME"] = old
    assert not report.success
    text = report.format()
    summary = _table(variant, "select split, category, pool_prevalence from n2_summary").set_index(
        ["split", "category"]
    )
    named = re.findall(r"category_pool_prevalence=([0-9.e+-]+), split=(\w+), category=(\w+)", text)
    assert named, text
    band_max = THRESHOLDS["n2_category_pool_prevalence_band"][1]
    for value, split, category in named:  # the observed values, named, and outside the band
        assert float(value) == pytest.approx(summary.pool_prevalence[(split, category)], rel=1e-5)
        assert float(value) > band_max
    assert "split_pool_n2_prevalence=" in text


def test_overall_n2_share_gate_has_a_ceiling(home: Path, tmp_path: Path) -> None:
    """The seed's sampler filled N1-short strata with N2 (0.497 of the sample): every gate on the
    overall share must name that value, per split and overall."""
    with lake(home) as con:
        vars_json = con.execute("select vars_json from build_runs order by build_id desc limit 1").fetchone()[
            0
        ]
        summary = con.execute("select * from n2_summary").df()
        negatives = con.execute("select type_bin, is_n2 from negatives").df()
    params = quality.expectation_parameters(json.loads(vars_json), THRESHOLDS)
    suites = {s.name: s for s in quality.load_suites()}
    # n2_summary: the split's share doctored to 0.497
    import duckdb

    con = duckdb.connect()
    con.register("n2_summary_df", summary.assign(n2_share_of_split=0.497))
    con.execute("create table n2_summary as select * from n2_summary_df")
    frame = quality.compute_frame(con, suites["n2_summary"], params)
    (outcome,) = quality.validate_frames({"n2_summary": frame}, [suites["n2_summary"]], params, "t", tmp_path)
    assert not outcome.success
    text = "\n".join(f.describe() for f in outcome.failures)
    assert (
        "expect_column_values_to_be_between(column=split_n2_share" in text and "split_n2_share=0.497" in text
    )
    # per type: DEV negatives all N2
    con.register("neg_df", negatives.assign(is_n2=negatives.type_bin == "DEV"))
    con.execute("create table negatives as select * from neg_df")
    frame = quality.compute_frame(con, suites["n2_per_type"], params)
    (outcome,) = quality.validate_frames(
        {"n2_per_type": frame}, [suites["n2_per_type"]], params, "t", tmp_path
    )
    assert not outcome.success and "n2_share=1, type_bin=DEV" in "\n".join(
        f.describe() for f in outcome.failures
    )


# --- sampling ------------------------------------------------------------------------------------------


def test_n2_fills_only_its_quota_and_top_ups_are_neighbouring_n1(home: Path) -> None:
    strata = _table(home, "select * from sampling_strata")
    plan = _table(home, "select * from int_sampling_strata_planned").set_index("stratum")
    negatives = _table(home, "select * from negatives")
    pool = _table(home, "select galaxy_id, bin_indices from int_negative_pool").set_index("galaxy_id")
    strata = strata.set_index("stratum")
    # N2 never beyond its quota: exactly min(quota, available) per stratum
    n2 = negatives[negatives.is_n2].groupby("stratum").size().reindex(strata.index).fillna(0)
    np.testing.assert_array_equal(n2.values, np.minimum(strata.n2_quota, strata.n_available_n2).values)
    # top-ups: N1 only, same split and type, nearest bins within the limit
    top = negatives[negatives.sampling_stage == 2]
    assert len(top) > 0 and not top.is_n2.any()
    own = top.native_stratum.str.split("|")
    want = top.stratum.str.split("|")
    assert (own.str[0] == want.str[0]).all() and (own.str[1] == want.str[1]).all()
    got_idx = np.stack(pool.bin_indices.reindex(top.galaxy_id).values)
    want_idx = np.stack(plan.bin_indices.reindex(top.stratum).values)
    distance = np.abs(got_idx - want_idx).sum(axis=1)
    np.testing.assert_array_equal(distance, top.topup_distance.values)
    assert distance.min() >= 1 and distance.max() <= VARS["sampling_topup_max_bin_distance"]
    # recorded: counts, donors, and any shortfall left
    per = top.groupby("stratum").size().reindex(strata.index).fillna(0)
    np.testing.assert_array_equal(per.values, strata.n_topped_up.values)
    donors = top.groupby(["stratum", "native_stratum"]).size()
    for stratum, row in strata[strata.n_topped_up > 0].iterrows():
        listed = dict(t.rsplit("=", 1) for t in row.topped_up_from.split(";"))
        assert {k: int(v) for k, v in listed.items()} == donors.loc[stratum].to_dict()
        assert f"n1_topped_up:{row.n_topped_up}" in row.fallback
    short = strata[strata.n_sampled < strata.n_wanted]
    for _stratum, row in short.iterrows():
        assert f"under_sampled:{row.n_wanted - row.n_sampled}" in row.fallback
    assert (strata.n_sampled <= strata.n_wanted).all()


def test_every_positive_type_has_negatives(home: Path) -> None:
    positives = _table(home, "select * from positives where is_matched")
    negatives = _table(home, "select distinct type from negatives")
    eligible = positives[positives.is_training_eligible]
    assert set(eligible.type) <= set(negatives.type)
    assert "EXP" in set(eligible.type)  # EXP is sampled like the others
    # Counterparts of a type outside type_bins (PSF on real DR10; the synthetic sky draws its hosts
    # from the published candidates' mix, which has no PSF host) are kept, flagged and excluded.
    type_bins = VARS["type_bins"]
    outside = positives[~positives.type.isin(type_bins)]
    assert not outside.is_training_eligible.any()
    assert (outside.exclusion_reason == "type_not_in_type_bins:" + outside.type).all()
    strata = _table(home, "select * from sampling_strata")
    strata = strata[~strata.type_bin.isin(type_bins)]
    assert (strata.n_wanted == 0).all() and strata.n_positives_excluded.sum() == len(outside)
    assert strata.fallback.str.startswith("positives_excluded:").all()


def test_stratify_by_a_magnitude_bin(variant: Path) -> None:
    strata = _table(variant, "select * from sampling_strata where n_wanted > 0")
    assert strata.stratum.str.contains(r"\|mag_z_dered:").all() and strata.mag_z_dered_bin.notna().all()
    stage1 = _table(variant, "select stratum, mag_z_dered from negatives where sampling_stage = 1")
    edges = VARS["mag_z_dered_bin_edges"]
    labels = [f"<{edges[0]}"] + [f"{a}-{b}" for a, b in itertools.pairwise(edges)] + [f">={edges[-1]}"]
    want = [labels[i] for i in np.searchsorted(edges, stage1.mag_z_dered.values, side="right")]
    assert stage1.stratum.str.extract(r"mag_z_dered:([^|]*)")[0].tolist() == want
    positives = _table(variant, "select stratum, mag_z_dered from positives where is_training_eligible")
    want = [labels[i] for i in np.searchsorted(edges, positives.mag_z_dered.values, side="right")]
    assert positives.stratum.str.extract(r"mag_z_dered:([^|]*)")[0].tolist() == want


def test_stratify_by_needs_type_and_bin_edges(tmp_path: Path, sweeps_glob: str) -> None:
    result = run_build(
        tmp_path / "bad",
        sweeps_glob,
        "--select",
        "int_negative_pool",
        "--vars",
        json.dumps({"stratify_by": ["type", "shape_r"]}),
    )
    assert result.returncode != 0
    assert "shape_r_bin_edges is missing" in result.stdout


# --- candidates ------------------------------------------------------------------------------------------


def _reference_positives(candidates: pd.DataFrame, sweeps: pd.DataFrame) -> pd.DataFrame:
    """The documented rule with astropy: nearest source within match_radius_arcsec of the catalogue
    position, and of the name position where it is > name_position_tolerance_arcsec away; nearer wins."""
    radius, tolerance = VARS["match_radius_arcsec"], VARS["name_position_tolerance_arcsec"]
    cat = SkyCoord(sweeps.ra.values * u.deg, sweeps.dec.values * u.deg)
    out = candidates[["candidate_id"]].copy()
    best = np.full(len(candidates), np.inf)
    gid = np.full(len(candidates), -1, dtype=np.int64)
    which = np.full(len(candidates), None, dtype=object)
    for key, ra, dec, use in (
        ("catalogue", candidates.ra, candidates.dec, np.ones(len(candidates), bool)),
        ("name", candidates.name_ra, candidates.name_dec, (candidates.name_offset_arcsec > tolerance).values),
    ):
        idx = np.flatnonzero(use)
        if not len(idx):
            continue
        near, sep, _ = match_coordinates_sky(SkyCoord(ra.values[idx] * u.deg, dec.values[idx] * u.deg), cat)
        ok = (sep.arcsec <= radius) & (sep.arcsec < best[idx])
        best[idx[ok]] = sep.arcsec[ok]
        gid[idx[ok]] = sweeps.galaxy_id.values[near[ok]]
        which[idx[ok]] = key
    return out.assign(galaxy_id=gid, matched_position=which)


@pytest.fixture(scope="module")
def sweep_positions(sky: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    frame = (
        pq.ParquetDataset(sorted(sky.glob("*.parquet")))
        .read(columns=["release", "brickid", "objid", "ra", "dec"])
        .to_pandas()
    )
    key = frame[["release", "brickid", "objid"]].astype(np.int64)
    frame["galaxy_id"] = key.release * 10**12 + key.brickid * 10**6 + key.objid
    return frame


def test_counterparts_follow_the_documented_rule(variant: Path, sweep_positions: pd.DataFrame) -> None:
    candidates = _table(
        variant,
        "select * from int_lens_candidates_deduplicated where grade in ('A', 'B') order by candidate_id",
    )
    positives = _table(variant, "select * from positives order by candidate_id")
    ref = _reference_positives(candidates, sweep_positions)
    np.testing.assert_array_equal(positives.galaxy_id.fillna(-1).astype(np.int64), ref.galaxy_id)
    assert positives.matched_position.tolist() == ref.matched_position.tolist()


def test_extra_list_merges_and_matches_by_name(variant: Path, extra_list: dict[str, Any]) -> None:
    positives = _table(variant, "select * from positives").set_index("candidate_id")
    unioned = _table(variant, "select * from int_lens_candidates_unioned")
    lenscat_ids = set(unioned.candidate_id[unioned.catalog == "lenscat"])
    # the three re-listed lenses merged into their lenscat positive (same lens 1.5-4" off: one row)
    for cid in extra_list["relisted"]:
        row = positives.loc[cid]
        assert row.n_listings == 2 and extra_list["path"] in row.catalogs and "J-relisted" in row["name"]
    # the new lens: matched through its DESI- name, its catalogue position being 10" off
    (new_id,) = positives.index[positives["name"] == extra_list["name"]]
    new = positives.loc[new_id]
    assert new.matched_position == "name" and int(new.galaxy_id) == extra_list["new_galaxy"]
    assert new.tier == "A" and new.name_offset_arcsec == pytest.approx(10, abs=0.5)
    # grade C (lenscat's 'possible'): no positive, but an exclusion zone
    assert "MAYBE-1" not in set(positives["name"])
    assert (unioned.grade[unioned.name == "MAYBE-1"] == "C").all()
    assert set(positives.index) - {new_id} <= lenscat_ids


def test_merging_equals_one_hop_reference(variant: Path) -> None:
    """Listings with any keys (catalogue or DESI- name position) within the merge radius are one lens."""
    cands = _table(variant, "select * from int_lens_candidates_unioned")
    cands["rank"] = cands.grade + "|" + cands.catalog_rank.astype(str).str.zfill(4) + "|" + cands.candidate_id
    keys = pd.concat(
        [
            cands[["candidate_id", "ra", "dec"]],
            cands[["candidate_id", "name_ra", "name_dec"]]
            .dropna()
            .set_axis(["candidate_id", "ra", "dec"], axis=1),
        ]
    )
    coords = SkyCoord(keys.ra.values * u.deg, keys.dec.values * u.deg)
    i, j, _, _ = search_around_sky(coords, coords, VARS["candidate_merge_radius_arcsec"] * u.arcsec)
    pairs = pd.DataFrame({"a": keys.candidate_id.values[i], "b": keys.candidate_id.values[j]})
    pairs = pairs[pairs.a != pairs.b]
    rank = cands.set_index("candidate_id")["rank"]
    best = pairs.assign(r=rank.reindex(pairs.b).values).groupby("a").r.min()
    best = best.reindex(rank.index)
    group = {
        min(own, other) if isinstance(other, str) else own for own, other in zip(rank, best, strict=True)
    }
    reps = set(rank.index[rank.isin(group)])
    got = set(_table(variant, "select candidate_id from int_lens_candidates_deduplicated").candidate_id)
    assert got == reps and len(got) < len(cands)


def test_candidate_list_errors_name_the_accepted_columns(tmp_path: Path, sweeps_glob: str) -> None:
    bad = tmp_path / "no_dec.csv"
    bad.write_text("Name,RA,grading\nX,10.0,confident\n")
    result = run_build(
        tmp_path / "bad",
        sweeps_glob,
        "--select",
        "stg_extra__lens_candidates",
        "--vars",
        json.dumps({"extra_candidates": [str(bad)]}),
    )
    assert result.returncode != 0
    assert f"Candidate list {bad} lacks column(s): dec (any of: dec, dec_deg" in result.stdout


# --- build_runs ------------------------------------------------------------------------------------------


def test_build_runs_lists_the_build_being_read(home: Path) -> None:
    builds = _table(home, "select build_id, snapshot_id, vars_md5 from build_runs order by build_id")
    last = builds.iloc[-1]
    at_build = _table(
        home,
        "select vars_json, vars_md5, snapshot_id, check_outcome from build_runs "
        f"where build_id = {last.build_id}",
        int(last.snapshot_id),
    )
    assert len(at_build) == 1 and int(at_build.snapshot_id[0]) == int(last.snapshot_id)
    assert json.loads(at_build.vars_json[0])["n2_definitions"] == VARS["n2_definitions"]
    assert at_build.vars_md5[0] == last.vars_md5 and at_build.check_outcome[0] == "unchecked"
    # the snapshot holds the build's outputs too
    assert _table(home, "select count(*) as n from negatives", int(last.snapshot_id)).n[0] > 0


def test_synthetic_sky_places_counterparts_for_every_list(tmp_path: Path) -> None:
    """`stronglens synth --candidates seed --candidates mine.csv`: extra lists (any-case RA/DEC, no
    zlens) get DR10 counterparts too, so they can match on the embedded sky."""
    from stronglens.synth import DEFAULT_CANDIDATES_CSV, generate_sky

    extra = tmp_path / "mine.csv"
    ra, dec = np.linspace(150.5, 154.5, 6), np.linspace(0.5, 4.5, 6)
    pd.DataFrame({"Name": [f"N{i}" for i in range(6)], "RA": ra, "DEC": dec}).to_csv(extra, index=False)
    out = tmp_path / "sky"
    report = generate_sky(
        str(out),
        density=20,
        tiles=["sweep-150p000-155p005"],
        candidates_csv=[DEFAULT_CANDIDATES_CSV, str(extra)],
        progress=False,
    )
    assert report.candidates_total == 5104 + 6
    import pyarrow.parquet as pq

    sky = pq.ParquetDataset(sorted(out.glob("*.parquet"))).read(columns=["ra", "dec"]).to_pandas()
    _, sep, _ = match_coordinates_sky(
        SkyCoord(ra * u.deg, dec * u.deg), SkyCoord(sky.ra.values * u.deg, sky.dec.values * u.deg)
    )
    assert (sep.arcsec < 1.0).sum() >= 5  # each gets a counterpart (one may sit under a mask)
