"""Survey regions: the DES-like wide field is deeper, sharper and has more passes than DECaLS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stronglens import synth
from stronglens.synth import regions
from stronglens.synth.model import SkyModel, _SkyMaps


def test_des_weight_covers_the_southern_cap_box() -> None:
    fp = regions.DesFootprint()
    ra = np.array([10.0, 330.0, 150.0, 10.0, 100.0])
    dec = np.array([-20.0, -50.0, 0.0, 20.0, -30.0])
    np.testing.assert_allclose(fp.weight(ra, dec), [1.0, 1.0, 0.0, 0.0, 0.5])


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("regions")
    tiles = ["sweep-010m025-015m020", "sweep-150p000-155p005"]  # DES-like, DECaLS-like
    synth.generate_sky(str(out), tiles=tiles, density=300.0, progress=False)
    frames = []
    for path in sorted(Path(out).glob("*.parquet")):
        df = pd.read_parquet(path, columns=["ra", "dec", "nobs_z", "psfsize_z", "psfdepth_z", "galdepth_z"])
        frames.append(df.assign(region="des" if path.name.startswith("sweep-010") else "decals"))
    return pd.concat(frames)


def test_des_is_deeper_with_more_passes_and_better_seeing() -> None:
    """Over each region (maps at random positions): DES ~8-10 passes, DECaLS 2-4 (DOMAIN.md), DES
    seeing better, and the resulting depth 0.5-1 mag deeper."""
    model = SkyModel()
    maps = _SkyMaps(42, model)
    rng = np.random.default_rng(0)
    samples = {
        "decals": (rng.uniform(120, 250, 4000), rng.uniform(-10, 30, 4000)),
        "des": (np.mod(rng.uniform(-50, 90, 4000), 360), rng.uniform(-60, 0, 4000)),
    }
    stats = {}
    for name, (ra, dec) in samples.items():
        phys = maps.physical(ra, dec)
        nobs, fwhm = phys[7], phys[3]
        # the sky model's depth: m5 = m5_1 + 1.25 log10 N - 2.5 log10(FWHM / 1.1)
        m5 = model.m5_single[3] + 1.25 * np.log10(nobs) - 2.5 * np.log10(fwhm / model.m5_ref_fwhm)
        stats[name] = (np.median(nobs), np.median(fwhm), np.median(m5))
    (n_des, f_des, m_des), (n_dec, f_dec, m_dec) = stats["des"], stats["decals"]
    assert 7.5 <= n_des <= 10 and 3 <= n_dec <= 4.5
    assert 0.9 <= f_des <= 1.05 and 1.1 <= f_dec <= 1.3
    assert 0.5 <= m_des - m_dec <= 1.0


def test_sweeps_follow_the_region(two_regions: pd.DataFrame) -> None:
    """In the written sweeps the DES tile is deeper (PSF and galaxy depth alike) and sharper."""
    med = two_regions.groupby("region")[["nobs_z", "psfsize_z", "psfdepth_z", "galdepth_z"]].median()
    assert med.loc["des", "psfsize_z"] < med.loc["decals", "psfsize_z"]
    assert med.loc["des", "psfdepth_z"] > med.loc["decals", "psfdepth_z"]
    assert med.loc["des", "galdepth_z"] > med.loc["decals", "galdepth_z"]
    assert np.corrcoef(np.log(two_regions.psfdepth_z), np.log(two_regions.galdepth_z))[0, 1] > 0.8
