"""Lens counterparts: one lens-galaxy row per published candidate inside the footprint."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stronglens import bricks
from stronglens.synth.footprint import _ARCSEC, TILE_DEG, _FootprintIndex
from stronglens.synth.model import _STREAM_CANDIDATES, T_DEV, T_EXP, T_PSF, T_REX, T_SER, SkyModel

#: The lens-candidate seed shipped with the project (lenscat 1.1.3, DESI- names).
DEFAULT_CANDIDATES_CSV = str(Path(__file__).resolve().parents[3] / "seeds" / "lenscat_desi_candidates.csv")

# --------------------------------------------------------------------------------------------------
# Context shared by all tiles of one run


@dataclass
class _Counterparts:
    """Lens counterparts inside the footprint, sorted by (piece key, candidate index)."""

    key: np.ndarray
    cand: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    bid: np.ndarray
    mag: np.ndarray
    zl: np.ndarray
    typ: np.ndarray
    displaced: np.ndarray
    n_candidates: int


def _piece_key(bid: np.ndarray, ira: np.ndarray, idec: np.ndarray) -> np.ndarray:
    return (
        (np.asarray(bid, np.int64) << 16)
        | ((np.asarray(idec, np.int64) + 90) << 8)
        | np.asarray(ira, np.int64)
    )


#: Accepted spellings of the candidate-list columns, matched case-insensitively (published tables
#: write RA/DEC, ra/dec or lenscat's ra_deg/dec_deg); zlens is optional (missing = drawn).
_CANDIDATE_COLUMNS = {"ra_deg": ("ra_deg", "ra", "ra [deg]"), "dec_deg": ("dec_deg", "dec", "dec [deg]")}


def _read_candidates(path: str | Sequence[str]) -> pd.DataFrame:
    """Every candidate list in the seed's layout (ra_deg, dec_deg, zlens), concatenated in order,
    so that the generator places a counterpart for every positive list it is given (extra lists
    the warehouse reads through the var ``extra_candidates`` match on this sky only so)."""
    frames = []
    for one in [path] if isinstance(path, str) else path:
        if not os.path.exists(one):
            raise FileNotFoundError(
                f"candidates_csv {one!r} not found: pass candidates_csv=None to skip lens counterparts"
            )
        df = pd.read_csv(one, dtype={"zlens": str})
        by_lower = {str(c).lower(): c for c in df.columns}
        renames = {}
        for want, aliases in _CANDIDATE_COLUMNS.items():
            hit = next((by_lower[a] for a in aliases if a in by_lower), None)
            if hit is None:
                raise ValueError(f"{one}: missing columns ['{want}'] (any of {list(aliases)}, any case)")
            renames[hit] = want
        df = df.rename(columns=renames)
        if "zlens" not in df.columns:
            df["zlens"] = None
        df = df[["ra_deg", "dec_deg", "zlens"]]
        bad = ~(np.isfinite(df["ra_deg"]) & np.isfinite(df["dec_deg"]) & (df["dec_deg"].abs() <= 90))
        if bad.any():
            raise ValueError(f"{one}: rows {np.flatnonzero(bad)[:5].tolist()} have invalid ra_deg/dec_deg")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _build_counterparts(
    path: str | Sequence[str], seed: int, model: SkyModel, fp: _FootprintIndex
) -> _Counterparts:
    """One lens-galaxy row per candidate in the footprint (see :class:`SkyModel` counterpart fields)."""
    df = _read_candidates(path)
    n = len(df)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_CANDIDATES]))
    # z_lens: first number of the 'a | b' alias list; missing -> drawn.
    zl = pd.to_numeric(
        df["zlens"].fillna("nan").str.split("|").str[0].str.strip(), errors="coerce"
    ).to_numpy()
    zmean, zsig, zlo, zhi = model.counterpart_zlens
    zl = np.where(np.isfinite(zl), zl, rng.normal(zmean, zsig, n))
    zl = np.clip(zl, zlo, zhi)
    sigma = model.counterpart_median_offset / math.sqrt(2.0 * math.log(2.0))
    off = rng.normal(0.0, sigma, (2, n))
    displaced = rng.random(n) < model.displaced_fraction
    sep = rng.uniform(*model.displaced_range, n)
    ang = rng.uniform(0.0, 2.0 * np.pi, n)
    off[0] = np.where(displaced, sep * np.cos(ang), off[0])
    off[1] = np.where(displaced, sep * np.sin(ang), off[1])
    dec0 = df["dec_deg"].to_numpy(np.float64)
    dec = np.clip(dec0 + off[1] * _ARCSEC, -90.0, 90.0)
    ra = np.mod(df["ra_deg"].to_numpy(np.float64) + off[0] * _ARCSEC / np.cos(np.radians(dec0)), 360.0)
    ra = np.where(ra >= 360.0, 0.0, ra)  # np.mod(-1e-17, 360) rounds to 360.0
    a, b, s, lo, hi = model.counterpart_mag
    mag = np.clip(a + b * zl + rng.normal(0.0, s, n), lo, hi)
    typ_codes = np.array([T_PSF, T_REX, T_DEV, T_EXP, T_SER])
    typ = typ_codes[
        rng.choice(5, n, p=np.asarray(model.counterpart_type_prob) / sum(model.counterpart_type_prob))
    ]
    bid = bricks.brick_id(ra, dec)
    keep = fp.in_footprint(bid)
    key = _piece_key(bid, np.floor(ra / TILE_DEG), np.floor(dec / TILE_DEG))
    cand = np.arange(n)
    order = np.lexsort((cand[keep], key[keep]))
    sel = np.flatnonzero(keep)[order]
    return _Counterparts(
        key=key[sel],
        cand=cand[sel],
        ra=ra[sel],
        dec=dec[sel],
        bid=bid[sel],
        mag=mag[sel].astype(np.float32),
        zl=zl[sel].astype(np.float32),
        typ=typ[sel].astype(np.int8),
        displaced=displaced[sel],
        n_candidates=n,
    )
