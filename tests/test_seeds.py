"""The lens-candidate seed is exactly the published catalogue: the rows of lenscat 1.1.3 (MIT) whose
name carries a DESI- alias (the Legacy Surveys lens searches), with plain column names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from tests.pipeline import ROOT

#: lenscat column -> seed column (the raw names hold spaces and brackets, awkward in every SQL engine).
SEED_COLUMNS = {
    "name": "name",
    "RA [deg]": "ra_deg",
    "DEC [deg]": "dec_deg",
    "zlens": "zlens",
    "type": "lenscat_type",
    "grading": "grading",
    "ref": "ref",
}


def test_seed_is_the_lenscat_desi_subset() -> None:
    # The data file only: importing lenscat needs ligo.skymap, which `make setup` leaves out (--no-deps).
    spec = importlib.util.find_spec("lenscat")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("lenscat==1.1.3 is not installed: run `make setup`")
    catalog = Path(spec.submodule_search_locations[0]) / "data" / "catalog.csv"
    raw = pd.read_csv(catalog, dtype=str, keep_default_na=False)
    desi = raw[raw["name"].str.contains("DESI-", regex=False)]
    expected = desi[list(SEED_COLUMNS)].rename(columns=SEED_COLUMNS).reset_index(drop=True)
    seed = pd.read_csv(ROOT / "seeds" / "lenscat_desi_candidates.csv", dtype=str, keep_default_na=False)
    assert len(seed) == 5104
    pd.testing.assert_frame_equal(seed, expected)
