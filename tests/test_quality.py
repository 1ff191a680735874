"""The quality gate, end to end on a small synthetic sky.

A healthy build passes ``stronglens check`` and becomes the current build; deliberately broken data
fails with a message naming the suite, the expectation and the observed value; a failed check never
replaces the current build.  The SQL frames the suites validate are compared with independent
pandas / astropy computations, and the offline Data Docs are scanned for remote assets with an HTML
parser (not the regexes that rewrote them).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky

from stronglens import cli, quality
from stronglens.synth import generate_sky
from stronglens.warehouse import Build, WarehouseError, current_build
from tests.pipeline import ROOT, build_or_fail, lake

#: Nine 5x5 deg tiles dense in lens candidates (~170 positives): every split and N2 category populated.
TILES = ["10,25,-25,-10"]
#: The healthy baseline: the default N2 preset; neg_pos_ratio 20 keeps a 225 deg^2 sky from running
#: short in most strata.
BASE_VARS: dict[str, Any] = {"neg_pos_ratio": 20}
#: The project's vars (the N2 presets a test derives a broken one from).
PROJECT_VARS = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
#: A band is never taken from the build's vars: this sky's gate widens n2_share_band in its own
#: thresholds file ($STRONGLENS_THRESHOLDS), as a team judging another sky would.
SKY_BANDS: dict[str, Any] = {"n2_share_band": [0.10, 0.35]}
#: The marts the suites validate; builds select them and their parents only, so that other marts
#: (cutouts, ...) neither slow these tests down nor break them.
MARTS = ("positives", "negatives", "sampling_strata", "n2_summary", "build_runs")
BUILD_SELECT = ("--select", *(f"+{m}" for m in MARTS), "--exclude", "test_type:data")
#: Every lake table a suite frame reads.
FRAME_TABLES = (
    "positives",
    "negatives",
    "sampling_strata",
    "n2_summary",
    "int_galaxies_filtered",
    "int_lens_candidates_unioned",
    "int_healpix_splits",
)
SUITES = {s.name: s for s in quality.load_suites()}


@contextlib.contextmanager
def _home(home: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STRONGLENS_HOME", str(home))
        if (home / "thresholds.yml").exists():
            patch.setenv("STRONGLENS_THRESHOLDS", str(home / "thresholds.yml"))
        yield


def _cli(home: Path, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process against ``home``; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with _home(home), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sky = tmp_path_factory.mktemp("quality_sky")
    generate_sky(str(sky), tiles=TILES, progress=False)
    home = tmp_path_factory.mktemp("quality_home")
    build_or_fail(home, str(sky / "*.parquet"), *BUILD_SELECT, "--vars", json.dumps(BASE_VARS))
    thresholds = {**quality.load_thresholds(), **SKY_BANDS}
    (home / "thresholds.yml").write_text(yaml.safe_dump(thresholds))
    return home


@pytest.fixture(scope="session")
def unchecked_sql(warehouse: Path) -> tuple[int, str, str]:
    """`stronglens sql` on the freshly built, not yet checked warehouse."""
    return _cli(warehouse, "sql", "select count(*) as n from negatives")


@pytest.fixture(scope="session")
def first_check(warehouse: Path, unchecked_sql: tuple[int, str, str]) -> quality.CheckReport:
    with _home(warehouse):
        return quality.run_check(accept_custom_vars=True)  # BASE_VARS are custom targets


@pytest.fixture(scope="session")
def params(first_check: quality.CheckReport, warehouse: Path) -> dict[str, Any]:
    with lake(warehouse) as con:
        vars_json = con.execute("select vars_json from build_runs where build_id = 1").fetchone()[0]
    with _home(warehouse):
        return quality.expectation_parameters(
            *quality.gate_vars(json.loads(vars_json), quality.load_thresholds())
        )


@pytest.fixture(scope="session")
def marts(first_check: quality.CheckReport, warehouse: Path) -> dict[str, pa.Table]:
    """Build 1's frame tables as Arrow (exact types: galaxy ids exceed float precision)."""
    with lake(warehouse, first_check.snapshot_id) as con:
        return {t: con.execute(f"select * from {t}").fetch_arrow_table() for t in FRAME_TABLES}


def _doctored(marts: dict[str, pa.Table], *statements: str) -> duckdb.DuckDBPyConnection:
    """An in-memory copy of the marts with ``statements`` applied: broken data, never the lake."""
    con = duckdb.connect()
    for name, table in marts.items():
        con.register(f"{name}_arrow", table)
        con.execute(f"create table {name} as select * from {name}_arrow")
        con.unregister(f"{name}_arrow")
    for sql in statements:
        con.execute(sql)
    return con


def _validate(
    con: duckdb.DuckDBPyConnection, suite: str, params: dict[str, Any], home: Path
) -> quality.SuiteOutcome:
    definition = SUITES[suite]
    frame = quality.compute_frame(con, definition, params)
    (outcome,) = quality.validate_frames({suite: frame}, [definition], params, "doctored", home)
    return outcome


def _failure(outcome: quality.SuiteOutcome, expectation: str, column: str) -> str:
    """The console text of the one failure of ``expectation`` on ``column`` (asserting it exists)."""
    text = "\n".join(outcome.lines())
    assert outcome.suite in text and not outcome.success, text
    matches = [f for f in outcome.failures if f.expectation == expectation and f.column == column]
    assert len(matches) == 1, text
    line = matches[0].describe()
    assert line in text and expectation in line and f"column={column}" in line
    return line


# --- the healthy build ----------------------------------------------------------------------------


def test_unchecked_build_is_not_served(unchecked_sql: tuple[int, str, str]) -> None:
    code, _, err = unchecked_sql
    assert code == 2
    assert "No build has passed its quality check yet (build 1: unchecked)" in err
    assert "stronglens check" in err and "--build N" in err


def test_healthy_build_passes_and_becomes_current(first_check: quality.CheckReport, warehouse: Path) -> None:
    assert first_check.success, first_check.format()
    assert {s.suite for s in first_check.suites} == set(SUITES)
    # suites of marts this catalogue-only build did not make (training) are skipped, the rest all run
    skipped = {s.suite for s in first_check.suites if s.skipped}
    assert skipped == {name for name, suite in SUITES.items() if suite.requires}
    checked = [s for s in first_check.suites if not s.skipped]
    assert all(s.passed == s.evaluated == len(SUITES[s.suite].expectations) for s in checked)
    code, out, _ = _cli(warehouse, "builds", "--format", "json")
    assert code == 0 and [b["check"] for b in json.loads(out)] == ["passed"]
    code, out, _ = _cli(warehouse, "sql", "select count(*) as n from negatives", "--format", "json")
    assert code == 0 and json.loads(out)[0]["n"] > 1000
    with lake(warehouse) as con:
        checks = con.execute("select build_id, success, summary from build_checks").fetchall()
    assert [(c[0], c[1]) for c in checks] == [(1, True)]
    summary = json.loads(checks[0][2])
    assert summary["success"] and summary["snapshot_id"] == first_check.snapshot_id
    assert {s["suite"] for s in summary["suites"]} == set(SUITES)


def test_build_checks_and_summary_are_readable(first_check: quality.CheckReport, warehouse: Path) -> None:
    """`stronglens sql` reads build_checks (written after the served snapshot) and the end-of-run
    summary names the build, counts per mart, the reports and what to try next."""
    from stronglens.summary import NEXT_COMMANDS, build_summary

    code, out, err = _cli(warehouse, "sql", "select build_id, success from build_checks", "--format", "json")
    assert code == 0, err
    assert json.loads(out) == [{"build_id": 1, "success": True}]
    with _home(warehouse):
        summary = build_summary(first_check.build_id)
    assert f"Build {first_check.build_id} (DuckLake snapshot {first_check.snapshot_id})" in summary
    assert re.search(r"positives [0-9,]+, sampling_strata [0-9,]+", summary)
    assert str(warehouse / quality.REPORTS_DIRNAME / "index.html") in summary
    assert summary.count("\n  stronglens ") == len(NEXT_COMMANDS) == 3


def test_frames_equal_independent_references(marts: dict[str, pa.Table], params: dict[str, Any]) -> None:
    con = _doctored(marts)
    negatives = quality.compute_frame(con, SUITES["negatives"], params).set_index("galaxy_id")
    neg_rows = marts["negatives"].to_pandas().set_index("galaxy_id")
    cands = marts["int_lens_candidates_unioned"].to_pandas()
    positives = marts["positives"].to_pandas()
    search = params["nearest_candidate_search_arcsec"]
    i_neg, _, sep, _ = search_around_sky(
        SkyCoord(neg_rows.ra.values * u.deg, neg_rows.dec.values * u.deg),
        SkyCoord(cands.ra.values * u.deg, cands.dec.values * u.deg),
        search * u.arcsec,
    )
    nearest = pd.Series(sep.arcsec).groupby(neg_rows.index.values[i_neg]).min()
    got = negatives.nearest_candidate_arcsec.dropna()
    assert len(nearest) > 0 and set(got.index) == set(nearest.index)
    np.testing.assert_allclose(got.sort_index().values, nearest.sort_index().values, rtol=0, atol=1e-6)
    # exact ids from Arrow: galaxy ids exceed float precision and positives.galaxy_id has nulls
    counterpart_ids = {int(g) for g in marts["positives"]["galaxy_id"].to_pylist() if g is not None}
    np.testing.assert_array_equal(
        negatives.is_positive_counterpart.values, negatives.index.isin(counterpart_ids)
    )

    strata = marts["sampling_strata"].to_pandas()
    names = strata.fallback.fillna("").map(lambda f: {t.split(":")[0] for t in f.split(";") if t})
    short = set(strata.stratum[names.map(lambda n: bool(n & set(params["shortfall_fallbacks"])))])
    per_split = quality.compute_frame(con, SUITES["negatives_per_split"], params).set_index("split")
    matched = positives[positives.is_training_eligible]
    for split, frame in per_split.iterrows():
        negs = neg_rows[neg_rows.split == split]
        full_neg = (~negs.stratum.isin(short)).sum()
        full_pos = (~matched[matched.split == split].stratum.isin(short)).sum()
        # every stratum counts: a stratum short of N1 must not hide an N2 surplus
        assert frame.n_negatives == len(negs) and frame.n2_share == pytest.approx(negs.is_n2.mean())
        assert frame.negatives_per_positive == pytest.approx(full_neg / full_pos)

    shares = quality.compute_frame(con, SUITES["split_shares"], params).set_index("split")
    pixels = marts["int_healpix_splits"].to_pandas().split.value_counts()
    alloc = dict(zip(params["split_names"], params["split_fractions"], strict=True))
    for split, row in shares.iterrows():
        share = pixels[split] / pixels.sum()
        sigma = np.sqrt(alloc[split] * (1 - alloc[split]) / pixels.sum())
        assert row.share == pytest.approx(share) and row.abs_deviation_sigma == pytest.approx(
            abs(share - alloc[split]) / sigma
        )

    pool = marts["int_galaxies_filtered"].to_pandas().healpix.value_counts()
    covered = set(pool.index[pool >= params["match_rate_min_pixel_coverage"] * pool.median()])
    frame = quality.compute_frame(con, SUITES["positives"], params).set_index("candidate_id")
    expected = positives.set_index("candidate_id").healpix.isin(covered)
    pd.testing.assert_series_equal(frame.in_footprint.sort_index(), expected.sort_index(), check_names=False)


def test_nearest_candidate_search_is_a_range_join(marts: dict[str, pa.Table], params: dict[str, Any]) -> None:
    """The band join must stay a range join: as a nested loop it took 340 s instead of 1.2 s on the
    default build (422K negatives x 5K candidates)."""
    suite = SUITES["negatives"]
    names = suite.frame_parameter_names()
    plan = _doctored(marts).execute("explain " + suite.frame_sql, {n: params[n] for n in names}).fetchall()
    operators = set(re.findall(r"[A-Z_]*JOIN[A-Z_]*|CROSS_PRODUCT", plan[0][1]))
    assert "IE_JOIN" in operators and not operators & {
        "NESTED_LOOP_JOIN",
        "BLOCKWISE_NL_JOIN",
        "CROSS_PRODUCT",
    }


class _AssetScanner(HTMLParser):
    """Collects every URL an HTML page would load by itself (not links a reader may follow)."""

    ASSET_ATTRS: ClassVar[set[tuple[str, str]]] = {
        ("script", "src"),
        ("link", "href"),
        ("img", "src"),
        ("img", "srcset"),
        ("iframe", "src"),
        ("source", "src"),
        ("embed", "src"),
        ("object", "data"),
        ("video", "src"),
        ("audio", "src"),
    }

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.assets += [v for k, v in attrs if (tag, k) in self.ASSET_ATTRS and v]
        self.assets += [m for k, v in attrs if k == "style" and v for m in _css_urls(v)]
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.assets += _css_urls(data)


def _css_urls(css: str) -> list[str]:
    return re.findall(r"url\(\s*['\"]?([^'\")]+)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)


def _remote_and_missing_assets(site: Path) -> tuple[list[str], list[str]]:
    remote, missing = [], []
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            scanner = _AssetScanner()
            scanner.feed(path.read_text())
            assets = scanner.assets
        elif path.suffix == ".css":
            assets = _css_urls(path.read_text())
        else:
            continue
        for url in assets:
            if re.match(r"(?i)(https?:)?//", url):
                remote.append(f"{path}: {url}")
            elif not url.startswith(("data:", "#")) and not (path.parent / url.split("?")[0]).exists():
                missing.append(f"{path}: {url}")
    return remote, missing


def test_reports_are_readable_offline(first_check: quality.CheckReport) -> None:
    site = Path(first_check.reports_dir)
    pages = list(site.rglob("*.html"))
    checked = [name for name, suite in SUITES.items() if not suite.requires]  # the rest were skipped
    assert len(pages) >= 1 + 2 * len(checked)  # index, one suite page and one result page per suite
    remote, missing = _remote_and_missing_assets(site)
    assert remote == [] and missing == []
    index = (site / "index.html").read_text()
    assert index.count("<tr><td>build-1</td>") == len(checked) and 'class="passed"' in index
    for href in re.findall(r'href="(validations/[^"]+)"', index):
        assert (site / href).is_file()


# --- deliberately broken data ---------------------------------------------------------------------


def test_duplicated_galaxy_fails_negatives(
    marts: dict[str, pa.Table], params: dict[str, Any], tmp_path: Path
) -> None:
    gid = int(marts["negatives"]["galaxy_id"][7].as_py())
    con = _doctored(marts, f"insert into negatives select * from negatives where galaxy_id = {gid}")
    line = _failure(
        _validate(con, "negatives", params, tmp_path), "expect_column_values_to_be_unique", "galaxy_id"
    )
    assert f"observed 2 of {len(marts['negatives']) + 1} rows unexpected" in line
    assert line.count(f"galaxy_id={gid}") == 2


@pytest.mark.parametrize("offset_arcsec, fails", [(5.0, True), (10.99, True), (11.01, False), (30.0, False)])
def test_negative_inside_exclusion_radius_fails_negatives(
    marts: dict[str, pa.Table], params: dict[str, Any], tmp_path: Path, offset_arcsec: float, fails: bool
) -> None:
    """Move one negative to ``offset_arcsec`` due north of a candidate; the radius is 11 arcsec."""
    assert params["exclusion_radius_arcsec"] == 11.0
    cand = marts["int_lens_candidates_unioned"].to_pandas().iloc[3]
    gid = int(marts["negatives"]["galaxy_id"][0].as_py())
    ra, dec = float(cand.ra), float(cand.dec) + offset_arcsec / 3600
    con = _doctored(marts, f"update negatives set ra = {ra!r}, dec = {dec!r} where galaxy_id = {gid}")
    outcome = _validate(con, "negatives", params, tmp_path)
    if not fails:
        assert outcome.success, "\n".join(outcome.lines())
        return
    line = _failure(outcome, "expect_column_values_to_be_between", "nearest_candidate_arcsec")
    reference = SkyCoord(cand.ra * u.deg, cand.dec * u.deg).separation(SkyCoord(cand.ra * u.deg, dec * u.deg))
    observed = float(re.search(r"nearest_candidate_arcsec=([0-9.]+)", line).group(1))
    assert observed == pytest.approx(reference.arcsec, abs=1e-4)
    assert f"galaxy_id={gid}" in line and "min_value=11" in line


def test_positive_counterpart_and_foreign_type_fail_negatives(
    marts: dict[str, pa.Table], params: dict[str, Any], tmp_path: Path
) -> None:
    counterpart = int(next(g for g in marts["positives"]["galaxy_id"].to_pylist() if g is not None))
    first, second = (int(g) for g in marts["negatives"]["galaxy_id"].to_pylist()[:2])
    con = _doctored(
        marts,
        f"update negatives set galaxy_id = {counterpart} where galaxy_id = {first}",
        f"update negatives set type = 'PSF' where galaxy_id = {second}",
    )
    outcome = _validate(con, "negatives", params, tmp_path)
    line = _failure(outcome, "expect_column_values_to_be_in_set", "is_positive_counterpart")
    assert "observed 1 of" in line and f"galaxy_id={counterpart}" in line
    line = _failure(outcome, "expect_column_values_to_be_in_set", "type")
    assert "type=PSF" in line and f"galaxy_id={second}" in line and "value_set=[SER, DEV, REX, EXP]" in line


def test_zero_n2_pool_fails_loudly(
    marts: dict[str, pa.Table], params: dict[str, Any], tmp_path: Path
) -> None:
    con = _doctored(marts, "update negatives set is_n2 = false, n2_category = null")
    line = _failure(
        _validate(con, "negatives", params, tmp_path), "expect_column_mean_to_be_between", "is_n2"
    )
    assert line.endswith("observed 0") and "min_value=0.1" in line
    outcome = _validate(con, "negatives_per_split", params, tmp_path)
    line = _failure(outcome, "expect_column_values_to_be_between", "n2_share")
    assert all(f"n2_share=0, split={s}" in line for s in params["split_names"])


def test_missing_negatives_break_the_ratio(
    marts: dict[str, pa.Table], params: dict[str, Any], tmp_path: Path
) -> None:
    strata = marts["sampling_strata"].to_pandas()
    clean = strata[strata.fallback.isna()].iloc[0]
    con = _doctored(
        marts,
        f"delete from negatives where galaxy_id in (select galaxy_id from negatives "
        f"where stratum = '{clean.stratum}' order by galaxy_id limit 3)",
    )
    per_split = quality.compute_frame(con, SUITES["negatives_per_split"], params).set_index("split")
    line = _failure(
        _validate(con, "negatives_per_split", params, tmp_path),
        "expect_column_values_to_be_between",
        "negatives_per_positive",
    )
    observed = per_split.loc[clean.split, "negatives_per_positive"]
    assert (
        observed < params["neg_pos_ratio"]
        and f"negatives_per_positive={observed:.6g}, split={clean.split}" in line
    )


def test_silent_under_sampling_fails_sampling_strata(
    marts: dict[str, pa.Table], params: dict[str, Any], tmp_path: Path
) -> None:
    stratum = marts["sampling_strata"].to_pandas().query("fallback.isna()").stratum.iloc[0]
    con = _doctored(
        marts, f"update sampling_strata set n_sampled = n_sampled - 2 where stratum = '{stratum}'"
    )
    outcome = _validate(con, "sampling_strata", params, tmp_path)
    line = _failure(outcome, "expect_column_values_to_be_between", "unrecorded_shortfall")
    assert f"unrecorded_shortfall=2, stratum={stratum}" in line
    line = _failure(outcome, "expect_column_values_to_be_between", "sampled_minus_wanted_if_no_shortfall")
    assert f"sampled_minus_wanted_if_no_shortfall=-2, stratum={stratum}" in line
    assert len(outcome.failures) == 2


def test_bad_tier_and_split_shares_fail(
    marts: dict[str, pa.Table], params: dict[str, Any], tmp_path: Path
) -> None:
    con = _doctored(
        marts,
        "update positives set tier = 'C' where candidate_id = (select min(candidate_id) from positives)",
        "update int_healpix_splits set split = 'train' where split = 'val'",
    )
    line = _failure(
        _validate(con, "positives", params, tmp_path), "expect_column_values_to_be_in_set", "tier"
    )
    assert "tier=C" in line
    outcome = _validate(con, "split_shares", params, tmp_path)
    line = _failure(outcome, "expect_column_values_to_be_between", "abs_deviation_sigma")
    assert "split=val" in line and "split=train" in line and len(outcome.failures) == 1


# --- a failing build never becomes current ---------------------------------------------------------


def test_dead_n2_category_fails_gate_and_previous_build_stays_current(
    warehouse: Path, first_check: quality.CheckReport, params: dict[str, Any]
) -> None:
    """Rebuild with an N2 preset whose agn_host_proxy is empty: the check fails, build 1 stays current."""
    assert first_check.success  # build 1 was checked (and passed) before this rebuild
    with lake(warehouse) as con:
        glob = json.loads(con.execute("select vars_json from build_runs where build_id = 1").fetchone()[0])[
            "sweeps"
        ]
    name = PROJECT_VARS["n2_definitions"]
    preset = PROJECT_VARS["n2_presets"][name]
    dead_preset = {**preset, "agn_host_proxy": {**preset["agn_host_proxy"], "min_snr_w1": 1.0e9}}
    dead = {**BASE_VARS, "n2_presets": {**PROJECT_VARS["n2_presets"], name: dead_preset}}
    rebuild = [f"int_negative_pool+,+{m}" for m in MARTS[:4]]  # the pool and what it feeds
    build_or_fail(
        warehouse, glob, "--select", *rebuild, "--exclude", "test_type:data", "--vars", json.dumps(dead)
    )
    code, out, _ = _cli(warehouse, "check")
    assert code == 1, out
    assert "Quality check of build 2" in out and "FAILED: not served as current" in out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  n2_summary "))
    n2_block = "\n".join(itertools.takewhile(lambda line: line.startswith("      "), lines[start + 1 :]))
    assert "expect_column_values_to_be_between(column=share, min_value=0, strict_min=True)" in n2_block
    for split in [*params["split_names"], "all"]:
        assert f"share=0, split={split}, category=agn_host_proxy" in n2_block

    query = "select n_negatives from n2_summary where split = 'all' and category = 'agn_host_proxy'"
    code, current, _ = _cli(warehouse, "sql", query, "--format", "json")
    assert code == 0 and json.loads(current)[0]["n_negatives"] > 0  # build 1, still current
    code, failed, _ = _cli(warehouse, "sql", query, "--format", "json", "--build", "2")
    assert code == 0 and json.loads(failed)[0]["n_negatives"] == 0  # build 2, readable by id
    code, out, _ = _cli(warehouse, "builds", "--format", "json")
    assert [(b["build_id"], b["check"]) for b in json.loads(out)] == [(1, "passed"), (2, "failed")]
    index = (warehouse / quality.REPORTS_DIRNAME / "index.html").read_text()
    assert index.index("<td>build-2</td>") < index.index("<td>build-1</td>")  # newest build first
    ran = [name for name, suite in SUITES.items() if not suite.requires]  # training suites: skipped
    assert index.count("<td>build-2</td>") == len(ran) and 'class="failed"' in index


# --- units: parameters, definitions, promotion rule, offline rewriting -------------------------------


def test_expectation_parameters_resolve_bands_and_derived_lists() -> None:
    build_vars = {
        "n2_share_band": [0.1, 0.25],
        "split_allocations": {"val": 0.2, "train": 0.8},
        "n2_priority": ["ring_proxy", "merger_proxy"],
        "exclusion_radius_arcsec": 11.0,
        "type_bins": ["SER", "DEV"],
    }
    thresholds = {"nearest_candidate_search_arcsec": 60.0, "match_band": [0, 1], "flags": [True, False]}
    params = quality.expectation_parameters(build_vars, thresholds)
    assert (params["n2_share_band_min"], params["n2_share_band_max"]) == (0.1, 0.25)
    assert (params["match_band_min"], params["match_band_max"]) == (0, 1)
    assert "flags_min" not in params and "type_bins_min" not in params
    assert params["split_names"] == ["train", "val"] and params["split_fractions"] == [0.8, 0.2]
    assert params["n2_categories"] == ["ring_proxy", "merger_proxy", "N1"]
    with pytest.raises(quality.QualityConfigError, match=r"redefines dbt var\(s\) \['type_bins'\]"):
        quality.expectation_parameters(build_vars, {**thresholds, "type_bins": []})
    with pytest.raises(quality.QualityConfigError, match="must be >= the build's exclusion_radius_arcsec"):
        quality.expectation_parameters(build_vars, {**thresholds, "nearest_candidate_search_arcsec": 5.0})
    preset_vars = {**build_vars, "n2_definitions": "p", "n2_presets": {"p": {"priority": ["spiral_proxy"]}}}
    assert quality.expectation_parameters(preset_vars, thresholds)["n2_categories"] == ["spiral_proxy", "N1"]
    with pytest.raises(quality.QualityConfigError, match="lack 'n2_priority'"):
        quality.expectation_parameters(
            {k: v for k, v in build_vars.items() if k != "n2_priority"}, thresholds
        )


def test_gate_bands_never_come_from_the_build() -> None:
    """A build's own n2_share_band is ignored (the thresholds file's or the default is used), and
    its non-default targets make it custom: served only with --accept-custom-vars."""
    loosened = {"n2_fraction": 0.0, "n2_share_band": [0.0, 1.0], "neg_pos_ratio": 100}
    judged, rest = quality.gate_vars(loosened, {"n2_share_band": [0.1, 0.3], "other": 1})
    assert judged["n2_share_band"] == [0.1, 0.3] and rest == {"other": 1}
    judged, _ = quality.gate_vars(loosened, {})
    assert judged["n2_share_band"] == [0.10, 0.25]  # dbt_project.yml default
    assert judged["n2_fraction"] == 0.0  # a target: the build's own, but reported as custom
    from stronglens.varschema import custom_targets

    assert custom_targets(loosened) == {"n2_fraction": 0.0, "n2_share_band": [0.0, 1.0]}
    report = quality.CheckReport(1, 1, "success", "t", 0.0, "r", [], custom_vars={"n2_fraction": 0.0})
    assert not report.success and "--accept-custom-vars" in report.format()
    report.accepted_custom_vars = True
    assert report.success and json.loads(report.to_json())["accepted_custom_vars"]


def _write_suite(folder: Path, body: str, frame: str | None = "select 1 as x") -> Path:
    folder.mkdir(exist_ok=True)
    if frame is not None:
        (folder / "s.sql").write_text(frame)
    path = folder / "s.yml"
    path.write_text(body)
    return path


def test_suite_definition_errors_name_the_file(tmp_path: Path) -> None:
    head = "description: d\nframe: s.sql\nrow_key: [x]\nexpectations:\n"
    ok = head + "  - type: expect_column_values_to_be_unique\n"
    suite = quality.load_suite(_write_suite(tmp_path / "ok", ok + "    column: x\n    why: w\n"))
    assert suite.expectations[0].kwargs == {"column": "x"} and suite.expectations[0].why == "w"
    cases = {
        "extra key": (ok + "    column: x\nowner: me\n", True, "exactly the keys"),
        "no frame": (ok + "    column: x\n", False, "frame SQL .* does not exist"),
        "no type": (
            "description: d\nframe: s.sql\nrow_key: [x]\nexpectations:\n  - column: x\n",
            True,
            "expectation 1: each expectation needs a `type`",
        ),
        "empty": ("description: d\nframe: s.sql\nrow_key: [x]\nexpectations: []\n", True, "non-empty list"),
    }
    for name, (body, with_frame, message) in cases.items():
        folder = tmp_path / name.replace(" ", "_")
        with pytest.raises(quality.QualityConfigError, match=message) as info:
            quality.load_suite(_write_suite(folder, body, "select 1 as x" if with_frame else None))
        assert str(folder / "s.yml") in str(info.value)
    unknown = quality.load_suite(_write_suite(tmp_path / "param", ok + "    column: $nope\n", "select $also"))
    with pytest.raises(quality.QualityConfigError, match=r"unknown parameter\(s\) \['\$also', '\$nope'\]"):
        quality.validate_frames({"s": pd.DataFrame({"x": [1]})}, [unknown], {}, "t", tmp_path / "home")
    bad_type = quality.load_suite(
        _write_suite(tmp_path / "type", ok.replace("unique", "unikue") + "    column: x\n")
    )
    with pytest.raises(
        quality.QualityConfigError, match=r"s\.yml, expectation 1 \(expect_column_values_to_be_unikue\)"
    ):
        quality.validate_frames({"s": pd.DataFrame({"x": [1]})}, [bad_type], {}, "t", tmp_path / "home")


def _build(build_id: int, check: str) -> Build:
    return Build(build_id, 10 * build_id, "t0", "t1", "success", check)


def test_current_build_is_the_newest_passed() -> None:
    builds = [_build(1, "passed"), _build(2, "passed"), _build(3, "failed"), _build(4, "unchecked")]
    assert current_build(builds).build_id == 2
    with pytest.raises(
        WarehouseError, match=r"build 1: failed, build 2: unchecked\).*stronglens check.*--build N"
    ):
        current_build([_build(1, "failed"), _build(2, "unchecked")])
    with pytest.raises(WarehouseError, match="No builds recorded yet"):
        current_build([])


def test_make_offline_removes_every_remote_asset(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "static" / "images").mkdir(parents=True)
    (site / "static" / "styles").mkdir(parents=True)
    (site / "static" / "images" / "logo-long.png").write_bytes(b"png")
    (site / "static" / "styles" / "ge.css").write_text(
        "a{background:url('https://cdn.example/x/logo-long.png')} b{background:url(https://cdn.example/y.png)}"
    )
    page = site / "deep" / "er" / "page.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        "<html><head><link rel='stylesheet' href='https://cdn.example/bootstrap.css'/>\n"
        '<LINK REL="stylesheet" HREF="http://cdn.example/x.css">\n'
        '<script src="https://cdn.example/jquery.js"></script><SCRIPT>$(function(){ x(); });</SCRIPT>\n'
        "<style>.brand a { background: url('https://assets.example/full_logo_dark.png') 0 0; }</style>\n"
        "</head><body><img class='logo' src=\"https://assets.example/logo-long.png?d=2026\" alt='GE'>"
        '<div style="background-image: url(http://assets.example/logo-long.png)">x</div>'
        '<img src="https://assets.example/unknown.png"><a href="https://docs.example/">docs</a>'
        "</body></html>"
    )
    stylesheet = tmp_path / "offline.css"
    stylesheet.write_text("body{}")
    assert quality.make_offline(site, stylesheet) == 1
    assert quality.make_offline(site, stylesheet) == 0  # already offline: untouched
    remote, missing = _remote_and_missing_assets(site)
    assert remote == [] and missing == []
    text = page.read_text()
    assert 'src="../../static/images/logo-long.png"' in text and "<script" not in text.lower()
    assert 'href="../../static/styles/offline.css"' in text and 'href="https://docs.example/"' in text
    assert "background: none 0 0" in text and "url('../../static/images/logo-long.png')" in text
    css = (site / "static" / "styles" / "ge.css").read_text()
    assert "url('../images/logo-long.png')" in css and "background:none" in css


def test_failed_dbt_build_or_missing_frame_cannot_pass(tmp_path: Path) -> None:
    ok = quality.SuiteOutcome(suite="positives", success=True, evaluated=3, passed=3)
    report = quality.CheckReport(1, 5, "failed", "2026-01-01T00:00:00+00:00", 0.1, str(tmp_path), [ok])
    assert not report.success and "dbt build status is 'failed'" in report.format()
    assert json.loads(report.to_json())["success"] is False
    con = _doctored({})
    with pytest.raises(duckdb.CatalogException, match="Table with name positives does not exist"):
        quality.compute_frame(con, SUITES["negatives"], {"nearest_candidate_search_arcsec": 60.0})
    error = "cannot compute the frame negatives.sql: Table with name negatives does not exist"
    (outcome,) = quality.validate_frames({"negatives": error}, [SUITES["negatives"]], {}, "t", tmp_path)
    assert not outcome.success and outcome.lines() == [f"negatives              ERROR  {error}"]
    report = quality.CheckReport(1, 5, "success", "t", 0.1, str(tmp_path), [ok, outcome])
    assert not report.success and "FAILED: not served as current" in report.format()
