"""Extract the DESI lens-candidate positives from the lenscat catalogue.

The seed ``seeds/lenscat_desi_candidates.csv`` is produced by :func:`extract_desi_candidates`
from ``lenscat/data/catalog.csv`` (lenscat 1.1.3, MIT licence).  Keeping the extraction as code
lets a test prove the shipped seed is exactly the published catalogue, not a hand-edited copy.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: lenscat column -> seed column.  The raw names contain spaces and brackets, which would need
#: quoting in every SQL engine; the seed carries plain names instead.
SEED_COLUMNS = {
    "name": "name",
    "RA [deg]": "ra_deg",
    "DEC [deg]": "dec_deg",
    "zlens": "zlens",
    "type": "lenscat_type",
    "grading": "grading",
    "ref": "ref",
}


def extract_desi_candidates(catalog_csv: str | Path) -> pd.DataFrame:
    """Return the rows of the lenscat catalogue whose name carries a ``DESI-`` alias.

    These are the Legacy Surveys lens-search candidates (Huang et al. 2020/2021, Storfer et al.
    2024): ``grading`` 'confident' becomes Tier-A and 'probable' Tier-B downstream.
    """
    raw = pd.read_csv(catalog_csv, dtype=str, keep_default_na=False)
    missing = set(SEED_COLUMNS) - set(raw.columns)
    if missing:
        raise ValueError(f"{catalog_csv}: lenscat catalogue lacks columns {sorted(missing)}")
    desi = raw[raw["name"].str.contains("DESI-", regex=False)]
    return desi[list(SEED_COLUMNS)].rename(columns=SEED_COLUMNS).reset_index(drop=True)
