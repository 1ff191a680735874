"""The cutout models end to end on the synthetic sky: manifest -> stored NPZ cutouts -> QA ->
shortcut audit and PNG reports, and a re-run that refetches only what is missing or broken."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stronglens.cutouts.store import read_cutout, resolve_uri
from tests.pipeline import build_or_fail, lake

SMALL = ("--vars", json.dumps({"cutout_max_positives": 3, "cutout_negatives_per_positive": 30}))
#: Three positives cannot train a finder (test_training_build covers training end to end).
NO_TRAINING = ("--exclude", "tag:training")


@pytest.fixture(scope="module")
def cutout_home(sweeps_glob: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cutout-warehouse")
    build_or_fail(home, sweeps_glob, *SMALL, *NO_TRAINING)
    return home


def _frame(home: Path, sql: str) -> pd.DataFrame:
    with lake(home) as con:
        return con.execute(sql).df()


def _stored(home: Path, sql: str) -> pd.DataFrame:
    """A query of the cutouts table with its paths (relative to the store) resolved to files."""
    frame = _frame(home, sql)
    frame["path"] = [resolve_uri(p, str(home / "cutouts")) for p in frame.path]
    return frame


def test_every_manifest_sample_has_a_valid_cutout(cutout_home: Path) -> None:
    manifest = _frame(cutout_home, "select * from cutout_manifest")
    cutouts = _stored(cutout_home, "select * from cutouts")
    assert (manifest.label == "positive").sum() == 3
    assert (manifest.label == "negative").sum() >= 60  # 30 per positive, within their strata
    assert sorted(cutouts.sample_id) == sorted(manifest.sample_id)
    assert (cutouts.status == "ok").all(), cutouts[cutouts.status != "ok"].reason.tolist()
    row = cutouts.iloc[0]
    image, meta = read_cutout(row.path)
    assert image.shape == (101, 101, 3) and image.dtype == np.float32
    assert str(meta.galaxy_id) == row.sample_id
    assert Path(row.path).stat().st_size == row.bytes


def _reference_matched_negatives(
    home: Path, per_positive: int, scales: dict[str, float]
) -> set[tuple[int, str]]:
    """The cutout negatives by the rule int_cutout_samples_selected documents, in pandas: per positive
    and class (N1 or an N2 category) its 4 x per_positive nearest candidates of its stratum (pool,
    less galaxies topped up into another stratum, plus the stratum's own top-ups) by
    sum(((x - x_pos) / scale)^2), ties by sample_hash; then each stratum's candidates round robin
    (best rank, then distance, then sample_hash) up to each N2 category's quota (its share of the
    stratum's sampled negatives) and N1 for the rest."""
    columns = sorted(scales)
    photometry = ", ".join(f"w.{c}" for c in columns)
    positives = _frame(
        home,
        f"select m.galaxy_id, m.stratum, {photometry} from int_cutout_samples_selected m "
        "join stg_dr10__sweeps w using (galaxy_id) where m.is_lens",
    )
    strata = ", ".join(f"'{s}'" for s in positives.stratum.unique())
    sampled = _frame(
        home,
        f"select n.galaxy_id, coalesce(n.n2_category, 'N1') as category, n.stratum as own, "
        f"n.sampled_for_stratum as stratum, n.sample_hash, {photometry} from int_negatives_sampled n "
        "join stg_dr10__sweeps w using (galaxy_id)",
    )
    topped = sampled[sampled.own != sampled.stratum]
    pool = _frame(
        home,
        f"select p.galaxy_id, coalesce(p.n2_category, 'N1') as category, p.stratum, p.sample_hash, "
        f"{photometry} from int_negative_pool p join stg_dr10__sweeps w using (galaxy_id) "
        f"where p.stratum in ({strata})",
    )
    pool = pool[~pool.galaxy_id.isin(topped.galaxy_id)]
    candidates = pd.concat([pool, topped[topped.stratum.isin(positives.stratum)]], ignore_index=True)
    ranks = []
    for _, positive in positives.iterrows():
        mine = candidates[candidates.stratum == positive.stratum].copy()
        mine["distance2"] = sum(((mine[c] - positive[c]) / scales[c]) ** 2 for c in columns)
        for _, group in mine.groupby("category"):
            nearest = group.sort_values(["distance2", "sample_hash", "galaxy_id"]).head(4 * per_positive)
            ranks.append(nearest.assign(neighbour_rank=np.arange(1, len(nearest) + 1)))
    best = (
        pd.concat(ranks)
        .groupby(["stratum", "galaxy_id"])
        .agg(neighbour_rank=("neighbour_rank", "min"), distance2=("distance2", "min"))
    )
    ordered = candidates.join(best, on=["stratum", "galaxy_id"]).sort_values(
        ["neighbour_rank", "distance2", "sample_hash", "galaxy_id"], na_position="last"
    )
    chosen: set[tuple[int, str]] = set()
    for stratum, n_positives in positives.stratum.value_counts().items():
        wanted = per_positive * n_positives
        shares = sampled[sampled.stratum == stratum].category.value_counts(normalize=True)
        mine = ordered[ordered.stratum == stratum]
        taken = [
            mine[mine.category == category].head(int(np.floor(wanted * share + 0.5)))  # SQL round()
            for category, share in shares.items()
            if category != "N1"
        ]
        n2 = sum(len(t) for t in taken)
        taken.append(mine[mine.category == "N1"].head(wanted - n2))
        chosen |= {(int(g), stratum) for g in pd.concat(taken).galaxy_id}
    return chosen


@pytest.fixture(scope="module")
def selection_home(sweeps_glob: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalogue and the cutout selection only, with enough positives that strata hold several."""
    home = tmp_path_factory.mktemp("selection-warehouse")
    selection = {"cutout_max_positives": 40, "cutout_negatives_per_positive": 6}
    build_or_fail(
        home, sweeps_glob, "--select", "+int_cutout_samples_selected", "--vars", json.dumps(selection)
    )
    return home


def test_negatives_are_the_positives_photometric_neighbours(selection_home: Path) -> None:
    """The cutout negatives equal an independent pandas implementation of the matching rule (strata
    with several positives, so the round robin is exercised), hold N2 confusers, and are closer to
    the positives in colour than the strata's negatives in sampling order."""
    import yaml

    scales = yaml.safe_load((Path(__file__).parents[1] / "dbt_project.yml").read_text())["vars"][
        "cutout_match_scales"
    ]
    selected = _frame(selection_home, "select * from int_cutout_samples_selected")
    negatives = selected[~selected.is_lens]
    assert selected[selected.is_lens].stratum.value_counts().max() >= 3
    expected = _reference_matched_negatives(selection_home, 6, scales)
    assert {(int(g), s) for g, s in zip(negatives.galaxy_id, negatives.stratum, strict=True)} == expected
    assert negatives.n2_category.notna().any() and negatives.match_distance.notna().all()
    colours = _frame(
        selection_home,
        "select m.is_lens, w.r_minus_z from int_cutout_samples_selected m "
        "join stg_dr10__sweeps w using (galaxy_id)",
    )
    unmatched = _frame(
        selection_home,
        "select w.r_minus_z from (select galaxy_id, row_number() over (partition by stratum, is_n2 "
        "order by sample_hash) as k from int_negative_pool where stratum in "
        "(select stratum from int_cutout_samples_selected where is_lens)) p "
        "join stg_dr10__sweeps w using (galaxy_id) where p.k <= 6",
    )
    lens_rz = colours[colours.is_lens].r_minus_z.median()
    matched_gap = abs(colours[~colours.is_lens].r_minus_z.median() - lens_rz)
    assert matched_gap < abs(unmatched.r_minus_z.median() - lens_rz)


def test_qa_audit_and_reports(cutout_home: Path) -> None:
    qa = _frame(cutout_home, "select * from cutout_qa")
    n = _frame(cutout_home, "select count(*) as n from cutouts").n[0]
    assert len(qa) == 3 * n and set(qa.band) == {"g", "r", "z"}
    assert qa.is_usable.all()
    audit = _frame(cutout_home, "select * from shortcut_audit")
    assert {"all", "split"} <= set(audit.scope_kind)
    undefined = audit[audit.auc.isna()]  # colours against r have no r rows
    assert (
        set(undefined.feature) <= {"core_colour", "annulus_colour_excess"} and (undefined.band == "r").all()
    )
    assert audit.auc.dropna().between(0, 1).all()
    assert (
        audit[audit.is_signal].feature.eq("annulus_colour_excess").all()
        and not audit.flagged[audit.is_signal].any()
    )
    reports = list((cutout_home / "reports" / "cutouts").glob("*/*.png"))
    names = {p.name for p in reports}
    assert {"cutout_mosaic.png", "shortcut_audit.png", "gallery_positive.png", "gallery_N1.png"} <= names
    groups = set(_frame(cutout_home, "select distinct n2_category from cutout_manifest").n2_category.dropna())
    assert {f"gallery_{g}.png" for g in groups} <= names


def test_lens_truth_describes_the_rendered_positives(cutout_home: Path) -> None:
    """lens_truth holds one row per positive, and the lens it records is the one in the cutout: the
    stored positive minus the same galaxy rendered unlensed holds the recorded arc flux."""
    from stronglens.cutouts import render

    truth = _frame(cutout_home, "select * from lens_truth order by sample_id")
    manifest = _frame(cutout_home, "select * from cutout_manifest order by sample_id")
    cutouts = _stored(cutout_home, "select * from cutouts order by sample_id")
    positives = manifest[manifest.is_lens]
    assert sorted(truth.sample_id) == sorted(positives.sample_id)
    assert truth.theta_e_arcsec.between(0.5, 4.0).all() and (truth.magnification > 1).all()
    assert truth.arc_snr.notna().all() and truth.arc_annulus_fraction.between(0, 1).all()
    row = positives.iloc[[0]]
    stored, _ = read_cutout(cutouts.set_index("sample_id").path[row.sample_id.iloc[0]])
    unlensed = render.render_batch(row.assign(is_lens=False), seed=42).cutouts[0]
    arc_flux = float((stored - unlensed)[:, :, 1].astype(np.float64).sum())
    recorded = 10 ** (-0.4 * (truth.set_index("sample_id").lensed_mag_r[row.sample_id.iloc[0]] - 22.5))
    assert arc_flux == pytest.approx(recorded, rel=0.15, abs=0.3)


def test_rerun_refetches_only_missing_or_broken(cutout_home: Path, sweeps_glob: str) -> None:
    before = _stored(cutout_home, "select * from cutouts order by sample_id")
    removed, corrupted = before.path.iloc[:3].tolist(), before.path.iloc[3]
    for path in removed:
        Path(path).unlink()
    Path(corrupted).write_bytes(b"not an npz")
    build_or_fail(cutout_home, sweeps_glob, "--select", "cutouts", *SMALL)
    after = _stored(cutout_home, "select * from cutouts order by sample_id")
    assert (after.status == "ok").all()
    changed = after.fetched_at != before.fetched_at
    assert set(after.path[changed]) == {*removed, corrupted}
    assert (after.sha256[~changed] == before.sha256[~changed]).all()
    assert (after.attempts[changed] == before.attempts[changed] + 1).all()
    for path in [*removed, corrupted]:
        read_cutout(path)


def test_store_is_keyed_by_content_never_by_split(cutout_home: Path) -> None:
    """One file per sample under a folder named by the render parameters' hash; the split is only
    a column (files under split folders let a loader mix train and test)."""
    rows = _frame(
        cutout_home,
        "select c.path, c.sample_id, m.split from cutouts c join cutout_manifest m using (sample_id)",
    )
    relative = [Path(p) for p in rows.path]
    assert not any(r.is_absolute() for r in relative)
    assert [r.name for r in relative] == [f"{s}.npz" for s in rows.sample_id]
    assert len({r.parent for r in relative}) == 1 and len(relative[0].parts) == 2
    assert not {"train", "val", "test"} & {part for r in relative for part in r.parts}


def test_a_copied_warehouse_reads_its_own_cutouts(
    cutout_home: Path, sweeps_glob: str, tmp_path: Path
) -> None:
    """The cutouts table stores paths relative to the store, so a copy (`cp -r`) reads the copy's
    files: the QA model of the copy builds while the original store is moved away."""
    import shutil

    copy = tmp_path / "copied-warehouse"
    shutil.copytree(cutout_home, copy, symlinks=True)
    away = cutout_home.with_name(cutout_home.name + "-away")
    (cutout_home / "cutouts").rename(away)
    try:
        build_or_fail(copy, sweeps_glob, "--select", "cutout_qa", *SMALL)
    finally:
        away.rename(cutout_home / "cutouts")
    n = _frame(copy, "select count(*) as n from cutouts").n[0]
    assert len(_frame(copy, "select * from cutout_qa")) == 3 * n


def test_retention_keeps_newest_and_served_builds() -> None:
    from stronglens.retention import _retained
    from stronglens.warehouse import Build

    builds = [
        Build(i, 10 * i, "", "", "success", c) for i, c in enumerate(["passed", "failed", "unchecked"], 1)
    ]
    kept, served = _retained(builds, keep=1)
    assert served is not None and served.build_id == 1
    assert [b.build_id for b in kept] == [1, 3]  # the served build is never dropped
    with pytest.raises(ValueError, match="at least 1"):
        _retained(builds, keep=0)


def test_gc_removes_what_no_retained_build_references(
    cutout_home: Path, sweeps_glob: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build with other render parameters writes a disjoint set of files; `gc --keep 1` keeps
    exactly the newest build's files, expires the other snapshots and deletes their Parquet."""
    from stronglens.retention import collect
    from stronglens.warehouse import WarehouseError, resolve_snapshot

    old_paths = set(_stored(cutout_home, "select path from cutouts").path)
    other = json.dumps({"cutout_max_positives": 2, "cutout_seed": 7})
    build_or_fail(cutout_home, sweeps_glob, "--select", "cutout_manifest", "cutouts", "--vars", other)
    new = _stored(cutout_home, "select path from cutouts")
    assert not old_paths & set(new.path)
    monkeypatch.setenv("STRONGLENS_HOME", str(cutout_home))
    dry = collect(keep=1, dry_run=True)
    assert dry.cutout_files_removed == len(old_paths) and all(Path(p).exists() for p in old_paths)
    report = collect(keep=1)
    print("\n" + report.format())
    assert report.kept == [max(report.kept + report.dropped)] and report.referenced == {
        report.kept[0]: len(new)
    }
    assert report.cutout_files_removed == len(old_paths) and report.cutout_bytes_removed > 0
    assert not any(Path(p).exists() for p in old_paths)
    assert all(Path(p).exists() for p in new.path)
    assert report.snapshots_expired > 0 and report.lake_bytes_removed > 0
    assert len(_frame(cutout_home, "select * from cutouts")) == len(new)  # the kept build reads
    with pytest.raises(WarehouseError, match="removed by `stronglens gc`"):
        resolve_snapshot(report.dropped[0])
