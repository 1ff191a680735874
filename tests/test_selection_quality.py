"""The `selection_marginals` suite (issue 12, item 7 on the build itself): completeness must rise with
theta_E and depth and fall with worse seeing within the host-bootstrap intervals, and really move
end to end at the false-positive-rate operating points.  A finder whose completeness turns over at
large theta_E (what the catalogue-only finder did) fails it; the fixed-score point is held to
monotonicity only."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from stronglens import quality

SUITE = {s.name: s for s in quality.load_suites()}["selection_marginals"]
AXES = {
    "theta_e_arcsec": np.arange(0.5, 3.01, 0.25),
    "psf_fwhm_arcsec": np.arange(0.9, 1.81, 0.15),
    "depth_mag": np.arange(22.5, 24.51, 0.5),
}


def _marginals(theta_e: np.ndarray | None = None, flat_psf_at: str | None = None) -> pd.DataFrame:
    """Healthy marginals (rising with theta_E and depth, falling with PSF, +-0.5% intervals) for
    two operating points; ``theta_e`` replaces the FPR point's theta_E completeness."""
    rows = []
    for point in ("fpr_1em02", "p_0p5"):
        for axis, centres in AXES.items():
            slope = np.linspace(0.02, 0.10, len(centres))
            values = slope[::-1] if axis == "psf_fwhm_arcsec" else slope
            if axis == "theta_e_arcsec" and theta_e is not None and point == "fpr_1em02":
                values = theta_e
            if axis == "psf_fwhm_arcsec" and point == flat_psf_at:
                values = np.full(len(centres), 0.05)
            rows += [(axis, point, c, v, v - 0.005, v + 0.005) for c, v in zip(centres, values, strict=True)]
    return pd.DataFrame(
        rows,
        columns=[
            "axis",
            "threshold_name",
            "bin_centre",
            "completeness",
            "host_boot95_low",
            "host_boot95_high",
        ],
    )


def _outcome(marginals: pd.DataFrame, home: Path) -> quality.SuiteOutcome:
    con = duckdb.connect()
    con.execute("create table selection_marginals as select * from marginals")
    con.execute(
        "create table selection_thresholds as select * from (values ('fpr_1em02', 'fpr'), "
        "('p_0p5', 'score')) t(threshold_name, kind)"
    )
    frame = quality.compute_frame(con, SUITE, {})
    (outcome,) = quality.validate_frames({SUITE.name: frame}, [SUITE], {}, "doctored", home)
    return outcome


def test_healthy_marginals_pass(tmp_path: Path) -> None:
    outcome = _outcome(_marginals(), tmp_path)
    assert outcome.success, "\n".join(outcome.lines())


def test_turnover_at_large_theta_e_fails_naming_the_bins(tmp_path: Path) -> None:
    # the catalogue-only finder's shape: up to 6.9% at 1.25", down to 2.3% at 3.0"
    turnover = np.array([1.6, 3.7, 5.9, 6.9, 5.9, 5.2, 4.1, 3.5, 3.3, 2.7, 2.3]) / 100
    outcome = _outcome(_marginals(theta_e=turnover), tmp_path)
    text = "\n".join(outcome.lines())
    assert not outcome.success and "axis=theta_e_arcsec" in text and "threshold_name=fpr_1em02" in text


def test_flat_seeing_fails_at_an_fpr_point_but_not_at_the_fixed_score(tmp_path: Path) -> None:
    assert _outcome(_marginals(flat_psf_at="p_0p5"), tmp_path).success
    outcome = _outcome(_marginals(flat_psf_at="fpr_1em02"), tmp_path)
    text = "\n".join(outcome.lines())
    assert not outcome.success and "check_kind=ends" in text and "axis=psf_fwhm_arcsec" in text
